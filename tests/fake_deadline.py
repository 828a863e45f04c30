"""A deadline that expires after a number of questions instead of seconds, so that tests of what a
time limit stops do not depend on the machine's speed."""

import math

from monet_opt.solving.common import Deadline


class ExpiresAfter(Deadline):
    """Answers its first `questions` questions (`expired`, `remaining_s`) as a deadline with no
    limit, and every later one as an expired deadline. A sweep asks once for the time its points
    may take and once before each task it submits; a bench asks once before each row."""

    def __init__(self, questions: int) -> None:
        super().__init__(0.0, 1.0)
        object.__setattr__(self, "asked", [0])
        object.__setattr__(self, "questions", questions)

    def _over(self) -> bool:
        self.asked[0] += 1
        return self.asked[0] > self.questions

    def expired(self) -> bool:
        return self._over()

    def remaining_s(self) -> float:
        return 0.0 if self._over() else math.inf
