"""合成データ — the synthetic default panel, written in MHLW's layout (see data/README.md)."""
