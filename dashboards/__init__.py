"""citytwin dashboards package."""

__all__: list[str] = []
