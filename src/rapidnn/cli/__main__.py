"""``python -m rapidnn.cli``: the ``rapidnn`` command line, with the same one-line errors (exit
status 2) as the console script, since both run the app's root group. (Not ``rapidnn/__main__.py``:
tests/test_imports.py ranks no ``__main__`` stage.)"""

from rapidnn.cli import app

if __name__ == "__main__":
    app()
