"""One revision per schema change, reviewed by hand."""
