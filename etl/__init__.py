"""ETL: source adapters, validation with row accounting, and loads into the warehouse."""
