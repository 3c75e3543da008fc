"""Layer classes (filled in by the layer API)."""
