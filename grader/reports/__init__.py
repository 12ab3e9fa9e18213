"""What students and instructors read: the outcome records, feedback and the gradebook."""
