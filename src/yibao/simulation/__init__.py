"""Policy simulation (政策模拟): a year of claims re-settled under a baseline and a reform pack.

Usage (a settled run is needed, so this is an example, not a doctest)::

    from yibao.simulation.comparison import simulate
    from yibao.simulation.render import format_simulation
    result = simulate(run, baseline, reform, out_dir=Path("sim"))

See ``docs/simulation.md``. :func:`simulate` settles both packs on one
:class:`yibao.batch.run.BatchRun`, compares them in DuckDB (:mod:`.comparison`) and writes
simulation.json / .xlsx / .html and PNG charts (:mod:`.outputs`); :func:`format_simulation`
renders the result for the terminal.
"""
