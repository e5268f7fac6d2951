"""The report's numbers, as pandas tables the tests compare with the store: arms and their
per-run values (`arms`, `tables`), which runs are results (`health`), the paired comparisons
(`pairs`, `declared`, `compare`, `family`, `verdicts`), the published numbers (`published`,
`part3`) and the forest plot's data (`forest`). No Markdown here: the sections word the numbers.
"""
