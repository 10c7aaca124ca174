"""The one view transform between photo pixels and canvas pixels (zoom and pan).

Screen = (image − origin) × zoom, where ``origin`` is the image point at the canvas's top-left.
Every mouse event goes through :meth:`ViewTransform.to_image` before a controller sees it.
"""
from __future__ import annotations

from dataclasses import dataclass

MIN_ZOOM = 0.02
MAX_ZOOM = 16.0


@dataclass
class ViewTransform:
    zoom: float = 1.0
    origin_x: float = 0.0
    origin_y: float = 0.0

    def to_image(self, sx: float, sy: float) -> tuple[float, float]:
        return self.origin_x + sx / self.zoom, self.origin_y + sy / self.zoom

    def to_screen(self, ix: float, iy: float) -> tuple[float, float]:
        return (ix - self.origin_x) * self.zoom, (iy - self.origin_y) * self.zoom

    def fit(self, image_w: int, image_h: int, canvas_w: int, canvas_h: int) -> None:
        """Whole photo visible and centred."""
        self.zoom = max(MIN_ZOOM, min(canvas_w / image_w, canvas_h / image_h))
        self.origin_x = (image_w - canvas_w / self.zoom) / 2
        self.origin_y = (image_h - canvas_h / self.zoom) / 2

    def zoom_at(self, sx: float, sy: float, factor: float) -> None:
        """Zoom by ``factor`` keeping the image point under (sx, sy) where it is."""
        ix, iy = self.to_image(sx, sy)
        self.zoom = min(MAX_ZOOM, max(MIN_ZOOM, self.zoom * factor))
        self.origin_x = ix - sx / self.zoom
        self.origin_y = iy - sy / self.zoom

    def set_zoom(self, zoom: float, canvas_w: int, canvas_h: int) -> None:
        """Zoom about the canvas centre (keys: 100 %, in, out)."""
        self.zoom_at(canvas_w / 2, canvas_h / 2, zoom / self.zoom)

    def pan(self, dsx: float, dsy: float) -> None:
        """Move the photo with the pointer by (dsx, dsy) screen pixels."""
        self.origin_x -= dsx / self.zoom
        self.origin_y -= dsy / self.zoom

    def center_on(self, ix: float, iy: float, canvas_w: int, canvas_h: int) -> None:
        self.origin_x = ix - canvas_w / 2 / self.zoom
        self.origin_y = iy - canvas_h / 2 / self.zoom

    def visible_region(self, canvas_w: int, canvas_h: int, image_w: int, image_h: int
                       ) -> tuple[int, int, int, int] | None:
        """The part of the photo on screen, as an integer box clipped to the photo."""
        x0, y0 = self.to_image(0, 0)
        x1, y1 = self.to_image(canvas_w, canvas_h)
        bx0, by0 = max(0, int(x0)), max(0, int(y0))
        bx1, by1 = min(image_w, int(x1) + 1), min(image_h, int(y1) + 1)
        if bx1 <= bx0 or by1 <= by0:
            return None
        return bx0, by0, bx1, by1
