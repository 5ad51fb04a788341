"""The interchange layout: bulk import and export of registers as documented CSV files."""
