"""Severstal-format data (numpy + OpenCV only): RLE masks, class map, folder reader, crop labels,
splits and the synthetic generator. See docs/data.md."""
