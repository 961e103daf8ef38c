// Torch's random generators are process-wide: trainings that run at the same time would draw from each other's
// streams, so the tests (several of which check seeded determinism) run one at a time. Torch uses both cores anyway.
// CI runs the classes marked [Trait("Category", "Parallel")] a second time with parallelisation on (.ci/run).
[assembly: CollectionBehavior(DisableTestParallelization = true)]
