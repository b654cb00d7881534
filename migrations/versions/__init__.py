"""One revision per schema change, reviewed by hand.

A file's number is its place in the revision chain, so the files list in the order Alembic applies
them. Revision ids are another matter: deployed databases store them (``alembic_version``), so a
shipped id never changes, and from file 0004 on they differ from the file numbers (an early
revision took id 0005, and id 0006 was written after 0007): each such file says so under its date.
A new revision takes the next file number and the next unused id, and revises the current head.
"""
