"""The page's components by name, and events wired by name.

A :class:`Page` maps names to components (``page["gallery"]``). Handlers return
:data:`Updates`, a dict from slot name to new value holding only what they change; the page
turns it into Gradio's ``{component: value}`` form, and refuses a name the event did not
declare as an output (so a misspelt or swapped slot fails in a unit test, not in a browser)::

    page.add("notes_md", gr.Markdown())
    page.on(page["notes_button"].click, handler, inputs=["state"], outputs=["notes_md"])

    def handler(state) -> Updates:
        return {"notes_md": "..."}

Feature modules build their components inside the page's layout hooks and wire them with
:meth:`Page.on` (see :mod:`studio` for the pattern).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

Updates = dict[str, Any]
"""Slot name -> new value (a plain value or a component update such as ``gr.Button(...)``)."""

C = TypeVar("C")


class Page:
    """Named components of one ``gr.Blocks`` page."""

    def __init__(self, state_hook: Callable[[Any], None] | None = None) -> None:
        self.components: dict[str, Any] = {}
        self.state_hook = state_hook
        """Called with every new value of the ``state`` slot (the studio keeps drafts)."""

    def add(self, name: str, component: C) -> C:
        """Register ``component`` as ``name`` (each name once)."""
        if name in self.components:
            raise ValueError(f"the page already has a component named {name!r}")
        self.components[name] = component
        return component

    def __getitem__(self, name: str) -> Any:
        try:
            return self.components[name]
        except KeyError:
            raise KeyError(f"the page has no component named {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.components

    def many(self, names: Iterable[str]) -> list[Any]:
        """The components ``names``, in that order."""
        return [self[n] for n in names]

    def named(self, handler: Callable[..., Updates], outputs: Sequence[str]) -> Callable[..., Any]:
        """``handler`` returning slot names, as a Gradio function returning components.

        The wrapper keeps the handler's signature (Gradio reads ``gr.Request`` and
        ``gr.SelectData`` parameters from it) and its docstring (the API page shows it).
        """
        allowed = set(outputs)
        components = self.components
        page = self

        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            updates = handler(*args, **kwargs)
            if not updates:  # nothing changes (Gradio reads an empty dict as one value)
                import gradio as gr  # loaded already: the page is running

                skips = tuple(gr.skip() for _ in outputs)
                return skips[0] if len(skips) == 1 else skips
            unknown = set(updates) - allowed
            if unknown:
                raise KeyError(
                    f"{getattr(handler, '__name__', handler)} returned {sorted(unknown)}, "
                    f"not among the event's outputs {sorted(allowed)}"
                )
            if "state" in updates and page.state_hook is not None:
                page.state_hook(updates["state"])
            return {components[name]: value for name, value in updates.items()}

        return wrapper

    def on(
        self,
        trigger: Callable[..., Any],
        handler: Callable[..., Updates],
        *,
        inputs: Sequence[str] = (),
        outputs: Sequence[str] = (),
        **options: Any,
    ) -> Any:
        """Wire ``trigger`` (a listener such as ``page["run"].click`` or ``event.success``)
        to ``handler`` by slot names; the Gradio dependency (chain ``.success`` on it)."""
        return trigger(
            self.named(handler, outputs), self.many(inputs), self.many(outputs), **options
        )
