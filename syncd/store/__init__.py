"""The CRM activity store: SQL tables, migrations, change feed and the repository over them.

Importing this package stays cheap; the SQLAlchemy modules are imported where they are used.
"""
