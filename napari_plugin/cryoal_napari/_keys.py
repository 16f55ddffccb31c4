"""cryoal's labelling keys on a napari viewer and on every one of its layers.

A selected layer's own keys (napari's ``1``-``6`` mode keys of Points and Labels layers)
take precedence over the viewer's, so each key is bound on the viewer and on every layer,
including layers added later; unbinding gives every key and status-bar hint back to napari.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ViewerKeys:
    """The keys of one labelling widget, bound on ``viewer`` and its layers."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        #: key (napari's spelling, e.g. ``"Control-Z"``) -> action
        self.actions: dict[str, Callable[[], None]] = {}
        self._help: Callable[[], str] = str
        #: layers whose status-bar hint shows cryoal's keys (restored on unbinding)
        self._helped: list[Any] = []

    def bind(self, actions: dict[str, Callable[[], None]], help_text: Callable[[], str]) -> None:
        """Bind ``actions`` (replacing napari's bindings of the same keys) and show
        ``help_text()`` as every layer's status-bar hint."""
        self.unbind()
        self.actions = dict(actions)
        self._help = help_text
        for key, action in self.actions.items():
            self.viewer.bind_key(key, _ignore_arg(action), overwrite=True)
        for layer in self.viewer.layers:
            self._bind_layer(layer)
        self.viewer.layers.events.inserted.connect(self._on_inserted)

    def unbind(self) -> None:
        """Give the keys back to napari (a closed widget must not receive them)."""
        if not self.actions:
            return
        self.viewer.layers.events.inserted.disconnect(self._on_inserted)
        for key in self.actions:
            self.viewer.bind_key(key, None, overwrite=True)
            for layer in self.viewer.layers:
                layer.bind_key(key, None, overwrite=True)
        for layer in self._helped:  # napari's hints come back with its keys
            layer.events.mode.disconnect(self._restore_help)
            layer.help = ""
        self._helped = []
        self.actions = {}

    def _on_inserted(self, event: Any) -> None:
        self._bind_layer(event.value)

    def _bind_layer(self, layer: Any) -> None:
        for key, action in self.actions.items():
            layer.bind_key(key, _ignore_arg(action), overwrite=True)
        # the status bar names cryoal's keys, not napari's mode keys the widget has taken
        layer.help = self._help()
        if layer not in self._helped:
            layer.events.mode.connect(self._restore_help)
            self._helped.append(layer)

    def _restore_help(self, event: Any) -> None:
        """After napari rewrote a layer's hint for its new mode (it connected first)."""
        if self.actions:
            event.source.help = self._help()


def _ignore_arg(action: Callable[[], None]) -> Callable[[object], None]:
    """napari calls key callbacks with the viewer or layer; the widget needs neither."""

    def callback(_owner: object) -> None:
        action()

    return callback
