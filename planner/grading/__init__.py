"""Answer grading: final-answer extraction, equivalence (math-verify in worker processes behind exact cheap
paths), order-free grouping and voting, and the file grader behind `tts-planner grade`.

Light to import: math-verify is loaded only inside the worker processes.
"""

from planner.grading.config import GradingConfig
from planner.grading.equivalence import Grader, shared_grader
from planner.grading.extract import boxed_spans, extract_answer, final_answer, reference_answer
from planner.grading.vote import Grouping, Vote, VoteList

__all__ = ["Grader", "GradingConfig", "Grouping", "Vote", "VoteList", "boxed_spans", "extract_answer", "final_answer", "reference_answer",
           "shared_grader"]
