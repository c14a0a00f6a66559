"""Panorama for Python notebooks: a project's tables as pyarrow, without a server.

    import panorama
    p = panorama.open("my-cdp")                   # the project's current run
    t = p.sql("SELECT * FROM unified_customers LIMIT 5")   # a pyarrow.Table
    t.to_pandas()
    p.tables()                                    # the run's tables
    p.explain("crm_contacts:C1", "webshop:17")    # why two records match, as a table
    p.run()                                       # a new run, as `panorama run` does

The same Rust library as the `panorama` CLI answers; results are handed to pyarrow through
the Arrow C stream interface, without copying the columns.
"""

from ._panorama import PanoramaError, Project, __version__, open

__all__ = ["open", "Project", "PanoramaError", "__version__"]
