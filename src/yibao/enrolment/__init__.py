"""参保与筹资: the enrolment registry of dated facts, contributions, subsidised enrolment, accounts."""
