"""`grader publish`: grades and feedback delivered to an LMS or the students' repositories.

``grader.publishing`` is the job (course, lock, state, student views); each target is a
module here (``canvas.py`` over ``canvas_api.py``); every LMS client sends through
``lms_http.py`` and every LMS driver decides each student's line in ``bulk.py``;
``plan.py`` decides what each student gets, ``ledger.py`` records what was sent so
nothing is sent twice.
"""
