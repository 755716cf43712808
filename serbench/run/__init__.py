"""Running a sweep: budgets and suites, planning (what to run, run ids, what is stored), one way a
run is attempted used by every executor (this process, a process pool, Ray, torchrun), the
budgeted training loop, progress and estimates."""
