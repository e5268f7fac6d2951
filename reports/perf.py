"""`python -m reports.perf`, kept as a name only: the benchmark of the report's build time lives
outside the report, in experiments/report_bench.py (`make bench-report`)."""

from experiments.report_bench import main

if __name__ == "__main__":
    main()
