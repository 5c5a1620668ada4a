"""The lab as a lab: a workspace a student completes (``rnnlab lab new``), checks that say what is
wrong (``rnnlab lab check``), and a gradebook for the teacher (``rnnlab lab grade``).

parts.py     the parts, taken from rnnlab's own code (skeleton: bodies blanked; key: rnnlab's bodies)
mistakes.py  typical mistakes, each an edit of the key, matched to name what went wrong
probes.py    the inputs a check feeds and the outputs it reads back (no expected answers)
child.py     the sandboxed side: runs the student's code on the inputs
sandbox.py   the box: its own process, a scratch copy, limits
checks.py    the trusted side: compares with the key, finds the first difference, names the mistake
workspace.py new workspaces and their manifest; grade.py the gradebook; cli.py the commands
"""
