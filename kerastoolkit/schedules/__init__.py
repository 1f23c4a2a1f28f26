"""Learning-rate schedules Keras lacks, as `LearningRateSchedule` subclasses."""
