"""Jobs: what the CLI and the widgets call to enhance a source into a sink.

A job cuts its frame range into segments of whole engine chunks, commits each finished segment
to a durable state folder, runs the segments here or as tasks on a Dask cluster, and assembles
the output at the end.  :mod:`.progress` holds the one progress record and cancel token.
"""
