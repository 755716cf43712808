"""Presenting a judgement: leaderboard formats (markdown, LaTeX, CSV, JSON, HTML), the page's
charts and details, plots, and terminal tables."""
