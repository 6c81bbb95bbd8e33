"""Drawing the synthetic kitchen: a top-down counter with a shelf, a board and a bowl, seen by a
camera whose look (counter colour and texture, lighting, noise) is the dataset's visual style.

Each frame is drawn from the step under way and how far into it the frame is; what happened
earlier stays visible (cut pieces, the bowl filling), as in a real kitchen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grammar import Step

OBJECT_COLOURS = {
    "tomato": (0.85, 0.15, 0.12), "cucumber": (0.2, 0.6, 0.2), "cheese": (0.95, 0.85, 0.3),
    "bread": (0.7, 0.5, 0.25), "orange": (1.0, 0.55, 0.1), "oil": (0.75, 0.8, 0.2),
    "milk": (0.95, 0.95, 0.95), "cereal": (0.9, 0.65, 0.35), "bowl": (0.6, 0.6, 0.65),
}
BOTTLES = {"oil", "milk", "cereal"}  # poured from, never cut
SHELF_SLOTS = {name: (0.1 + 0.1 * i, 0.12) for i, name in enumerate(sorted(OBJECT_COLOURS))}
BOARD = (0.45, 0.72)
BOWL = (0.78, 0.45)
REST = (0.12, 0.85)  # where the hand waits between steps


@dataclass(frozen=True)
class Style:
    """A dataset's look."""

    counter: tuple[float, float, float]  # base colour of the counter
    texture: str  # "stripes" | "checker" | "speckle"
    gain: float  # contrast of the camera
    offset: float  # brightness of the camera
    hue_shift: int  # objects' colour channels rotated by this many places
    noise: float  # per-pixel sensor noise (std, in [0, 1] units)


def _grid(size: int):
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(axis, axis)  # x, y


class Painter:
    def __init__(self, size: int, style: Style, hand: tuple[float, float, float], shift: tuple[float, float]):
        self.size = size
        self.style = style
        self.hand = np.asarray(hand, dtype=np.float32)
        self.shift = shift  # a participant's own counter layout
        self.x, self.y = _grid(size)
        self.background = self._counter()

    def _counter(self) -> np.ndarray:
        x, y = self.x, self.y
        pattern = {"stripes": 0.5 + 0.5 * np.sin(2 * np.pi * 6 * y),
                   "checker": ((np.floor(x * 8) + np.floor(y * 8)) % 2).astype(np.float32),
                   "speckle": 0.5 + 0.5 * np.sin(37 * x * y + 11 * x) * np.cos(23 * y)}[self.style.texture]
        image = np.asarray(self.style.counter, dtype=np.float32) * (0.85 + 0.15 * pattern)[..., None]
        self._disc(image, BOARD, 0.17, (0.55, 0.4, 0.25), square=True)
        self._disc(image, BOWL, 0.13, OBJECT_COLOURS["bowl"])
        return image

    def _at(self, position):
        return position[0] + self.shift[0], position[1] + self.shift[1]

    def _disc(self, image, centre, radius, colour, square=False):
        cx, cy = self._at(centre)
        if square:
            mask = (np.abs(self.x - cx) < radius) & (np.abs(self.y - cy) < radius * 0.6)
        else:
            mask = (self.x - cx) ** 2 + (self.y - cy) ** 2 < radius**2
        image[mask] = colour

    def _line(self, image, start, end, width, colour):
        (ax, ay), (bx, by) = self._at(start), self._at(end)
        dx, dy = bx - ax, by - ay
        t = np.clip(((self.x - ax) * dx + (self.y - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        mask = (self.x - ax - t * dx) ** 2 + (self.y - ay - t * dy) ** 2 < width**2
        image[mask] = colour

    def colour(self, obj):
        return tuple(np.roll(OBJECT_COLOURS[obj], self.style.hue_shift))

    def frame(self, scene: Scene, step: Step | None, progress: float, rng: np.random.Generator) -> np.ndarray:
        image = self.background.copy()
        for obj, (place, pieces) in scene.objects.items():
            if step is not None and obj == step.obj and step.verb in ("take", "return", "put", "pour"):
                continue  # drawn by the step itself
            self._object(image, obj, place, pieces)
        if scene.bowl_fill:
            self._disc(image, BOWL, 0.04 + 0.07 * min(1.0, scene.bowl_fill / 6), scene.bowl_colour())
        hand = self._step(image, scene, step, progress) if step is not None else REST
        jitter = rng.normal(0, 0.004, 2)
        self._disc(image, (hand[0] + jitter[0], hand[1] + jitter[1]), 0.05, self.hand)
        image = image * self.style.gain + self.style.offset + rng.normal(0, self.style.noise, image.shape)
        return (np.clip(image, 0, 1) * 255).astype(np.uint8)

    def _object(self, image, obj, place, pieces):
        if place == "bowl":
            return
        centre = SHELF_SLOTS[obj] if place == "shelf" else BOARD
        if obj in BOTTLES:
            self._line(image, (centre[0], centre[1] - 0.05), (centre[0], centre[1] + 0.05), 0.03, self.colour(obj))
        elif pieces <= 1:
            self._disc(image, centre, 0.06, self.colour(obj))
        else:
            for k in range(pieces):
                self._disc(image, (centre[0] - 0.08 + 0.16 * k / (pieces - 1), centre[1]), 0.03, self.colour(obj))

    def _step(self, image, scene, step, p):
        obj, colour = step.obj, self.colour(step.obj)
        if step.verb in ("take", "return"):
            start, end = (SHELF_SLOTS[obj], BOARD) if step.verb == "take" else (BOARD, SHELF_SLOTS[obj])
            where = (start[0] + p * (end[0] - start[0]), start[1] + p * (end[1] - start[1]))
            self._held(image, obj, where, colour)
            return where
        if step.verb == "cut":
            knife_y = BOARD[1] - 0.03 - 0.12 * abs(np.sin(3 * np.pi * p))
            self._line(image, (BOARD[0] + 0.02, knife_y - 0.1), (BOARD[0] + 0.02, knife_y), 0.012, (0.8, 0.8, 0.85))
            return BOARD[0] + 0.02, knife_y - 0.12
        if step.verb == "put":
            where = (BOARD[0] + p * (BOWL[0] - BOARD[0]), BOARD[1] + p * (BOWL[1] - BOARD[1]))
            for k in range(3):
                self._disc(image, (where[0] - 0.03 + 0.03 * k, where[1]), 0.025, colour)
            return where
        if step.verb == "pour":
            top = (BOWL[0] - 0.12 + 0.06 * p, BOWL[1] - 0.18)
            self._line(image, top, (top[0] + 0.04 + 0.06 * p, top[1] + 0.08 - 0.04 * p), 0.03, colour)
            self._line(image, (BOWL[0], BOWL[1] - 0.1), (BOWL[0], BOWL[1] - 0.1 + 0.09 * p), 0.01, colour)
            return top
        if step.verb == "stir":
            angle = 4 * np.pi * p
            tip = (BOWL[0] + 0.07 * np.cos(angle), BOWL[1] + 0.07 * np.sin(angle))
            self._line(image, tip, (tip[0] + 0.02, tip[1] - 0.12), 0.01, (0.85, 0.85, 0.8))
            return tip[0] + 0.02, tip[1] - 0.12
        raise ValueError(f"cannot draw verb {step.verb!r}")

    def _held(self, image, obj, where, colour):
        if obj in BOTTLES:
            self._line(image, (where[0], where[1] - 0.05), (where[0], where[1] + 0.05), 0.03, colour)
        else:
            self._disc(image, where, 0.06, colour)


class Scene:
    """Where every object is (shelf, board, bowl), how many pieces it is in, and what the bowl holds."""

    def __init__(self):
        self.objects = {obj: ("shelf", 1) for obj in OBJECT_COLOURS if obj != "bowl"}
        self.bowl_fill = 0
        self.bowl_colours: list[tuple[float, float, float]] = []

    def bowl_colour(self):
        return tuple(np.mean(self.bowl_colours, axis=0)) if self.bowl_colours else OBJECT_COLOURS["bowl"]

    def finish(self, step: Step, colour):
        """The state after `step` is complete."""
        place, pieces = self.objects.get(step.obj, ("shelf", 1))
        if step.verb == "take":
            self.objects[step.obj] = ("board", pieces)
        elif step.verb == "return":
            self.objects[step.obj] = ("shelf", pieces)
        elif step.verb == "cut":
            self.objects[step.obj] = (place, 4)
        elif step.verb == "put":
            self.objects[step.obj] = ("bowl", pieces)
            self.bowl_fill += 2
            self.bowl_colours.append(colour)
        elif step.verb == "pour":
            self.bowl_fill += 1
            self.bowl_colours.append(colour)


def render_video(steps: list[Step], num_frames: int, painter: Painter, rng: np.random.Generator) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of one performance."""
    scene = Scene()
    frames = np.empty((num_frames, painter.size, painter.size, 3), dtype=np.uint8)
    by_frame: list[Step | None] = [None] * num_frames
    for step in steps:
        by_frame[step.first : step.last + 1] = [step] * (step.last - step.first + 1)
    previous = None
    for t in range(num_frames):
        step = by_frame[t]
        if previous is not None and step is not previous:
            scene.finish(previous, painter.colour(previous.obj))
        previous = step
        progress = 0.0 if step is None else (t - step.first + 0.5) / (step.last - step.first + 1)
        frames[t] = painter.frame(scene, step, progress, rng)
    return frames
