"""grader: a grading pipeline for programming courses on the Sphere Engine Containers API."""

__version__ = "0.1.0"
