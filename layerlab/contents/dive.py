from ..analysis.efficiency import dive_efficiency_table  # placeholder: replaced by H1b's move
