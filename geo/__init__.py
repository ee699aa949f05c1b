"""H3 geometry: points to cells, parents, neighbours, and named area layers. Bottom of the stack."""
