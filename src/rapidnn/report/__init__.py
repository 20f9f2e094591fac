"""Tables, plots and the Markdown / self-contained HTML report of ``rapidnn reproduce``."""
