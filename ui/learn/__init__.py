"""The Learn page: a guided walkthrough of a recorded run, and questions answered with runs."""
