"""The page's fixed texts: the introduction and the API help."""

from __future__ import annotations

INTRO = (
    "# ADA-SAM Studio\n"
    "A classifier's **GradCAM** finds each structure, its heatmap becomes **SAM**'s box and mask "
    "prompts, and a LoRA-adapted SAM proposes **three candidate masks**. Pick one, refine it with "
    "clicks or the brush, rate it on the **SegEx** scale and submit."
)
API_HELP = """
Every step is reachable with `gradio_client`; one `Client` is one session (its case stays
between calls), and inputs can be given by name (`client.predict(x=40, y=52, mode="add",
api_name="/refine")`):

```python
from gradio_client import Client, handle_file
client = Client("http://127.0.0.1:7860/")
result, *_ = client.predict(handle_file("CT_small.dcm"), model="liver-ct", api_name="/predict")
```

| api_name | inputs | returns |
|---|---|---|
| `/predict` | file, model, structures, slice_index, window | JSON, heatmap, prompts, candidates |
| `/choose_candidate` | rank (0 = best) | result JSON, mask image |
| `/refine` | x, y (slice pixels), mode (`add`, `remove`, `box`) | result JSON, mask image |
| `/undo`, `/reset` | — | result JSON, mask image |
| `/submit` | annotator, score (1–5), verdict, rubric, comment | receipt JSON, files |
| `/download` | — | mask PNG, mask NIfTI, overlay PNG |
| `/statistics` | — | summary, plot |

The result JSON lists, per structure: the classifier's probability, whether it was found, the
box, the candidates' scores and areas, the chosen candidate, the clicks and the mask area.
"""
SHORTCUTS_HELP = (
    "**Keys** (outside text fields): **←/→** previous/next slice · **A** add click · "
    "**R** remove click · **B** box · **U** or **Ctrl+Z** undo · **S** submit · "
    "**N** next case · **+/−/0** zoom in/out/fit (scroll the canvas to pan)"
)
