"""Reproductions: for each paper, a miniature experiment with every arm the paper compares, its metrics
and named claim checks, at tiny (minutes), small (about an hour on 2 CPU cores) and paper scale."""
