"""`grader publish`: grades and feedback delivered to an LMS or the students' repositories.

``grader.publishing`` is the job (course, lock, state, student views); each target is a
module here (``canvas.py`` over ``canvas_api.py``); ``plan.py`` decides what each
student gets, ``ledger.py`` records what was sent so nothing is sent twice.
"""
