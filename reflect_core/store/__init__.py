"""What a user keeps: the history (TinyDB), records kept in step with their runs, bundles,
imports and each user's uploaded files.

Modules: ``history``, ``records``, ``bundles``, ``importer``, ``user_files``.
"""
