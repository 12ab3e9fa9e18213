"""What students and instructors read: feedback, instructor views, the gradebook, LMS files."""
