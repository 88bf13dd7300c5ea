"""SGLang frontend programs that carry out the planner's strategies, their reward-model scorers, and a
stand-in server that speaks SGLang's HTTP protocol."""
