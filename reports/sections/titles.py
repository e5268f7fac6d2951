"""Every section's title, without its number: the order in `reports.sections` numbers them, and
a section that points to another one names it by its title here."""

ANSWERS = "Answers"
SUMMARY = "Summary"
PRIMARY = "Primary questions"
PART3 = "Part 3 beside us"
CURVES = "Learning curves"
MC = "MC dropout minus standard evaluation"
COST = "Cost"
PUBLISHED = "Other published numbers"
HEALTH = "Run health"
PROVENANCE = "Provenance"
APPENDIX = "All pairwise comparisons"
