"""citytwin layers package."""

__all__: list[str] = []
