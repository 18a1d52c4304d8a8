"""The science protocol: building and training backbones (with the model cache), full-ranking
evaluation, the membership audit, unlearning jobs and the result record they produce. May
import ``harness.data`` and everything below it; knows nothing of Ray."""
