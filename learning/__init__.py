"""The learning loop: stored corrections → fine-tuned, gated model versions (and back).

Glue between the ML core (:mod:`adasam`: fine-tuning, the gate, AuxOL) and persistence
(:mod:`storage`: corrections, ratings, model versions, the one-job lock). Neither of those
imports this package; the ``finetune``, ``models`` and ``simulate`` commands of
``python -m adasam`` and the studio do.
"""
