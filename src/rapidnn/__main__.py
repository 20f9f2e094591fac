"""``python -m rapidnn``: the ``rapidnn`` command line, with the same one-line errors (exit
status 2) as the console script, since both run the app's root group."""

from rapidnn.cli import app

if __name__ == "__main__":
    app()
