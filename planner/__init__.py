"""tts-planner: predict how hard a math problem is for a policy, then plan test-time compute for it."""

__version__ = "0.1.0"
