"""The named settings of bayescmoe: one TOML file per spec (MODEL.md section 2)."""
