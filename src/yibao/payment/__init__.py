"""Provider payment (DIP / DRG point-value settlement) and fund operation."""
