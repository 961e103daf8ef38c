namespace MlNetDeep.Reinforcement;

/// <summary>The outcome of one action: the next state, its reward, and whether the episode has ended.</summary>
public readonly record struct StepResult(int State, double Reward, bool Done);

/// <summary>
/// An environment with a finite set of states and actions (states and actions are numbered from 0): reset with a seed,
/// step with an action, and the actions that are legal in a state.
/// </summary>
public interface IEnvironment
{
    int StateCount { get; }
    int ActionCount { get; }

    /// <summary>Starts an episode; the same seed gives the same start.</summary>
    int Reset(Random random);

    /// <summary>Takes <paramref name="action"/> in <paramref name="state"/>; <paramref name="random"/> draws any chance in the outcome.</summary>
    StepResult Step(int state, int action, Random random);

    /// <summary>Whether an episode is over in <paramref name="state"/>.</summary>
    bool IsTerminal(int state);
}

/// <summary>
/// Flippers, the course's solitaire tic-tac-toe: a 3x3 board whose tiles show a dot or nothing; a move flips one tile;
/// the game is won when exactly three dots fill one whole row or one whole column and every other tile is blank. A
/// board is 9 bits (bit i is tile i, row by row, 1 a dot); the 9 actions flip tiles 0-8. Winning pays 1, every other
/// move 0, so with a discount below 1 the best policy wins in the fewest moves. A slippery Flippers
/// (<see cref="SlipProbability"/> > 0) sometimes fails to flip: the move is spent and the board stays.
/// </summary>
public sealed class Flippers : IEnvironment, IStateFeatures
{
    public const int Tiles = 9;
    public const int Boards = 1 << Tiles;

    /// <summary>The six winning boards: a full row or a full column of dots, nothing else.</summary>
    public static IReadOnlyList<int> GoalBoards { get; } = [0b000_000_111, 0b000_111_000, 0b111_000_000, 0b001_001_001, 0b010_010_010, 0b100_100_100];

    private static readonly Lazy<int[]> Distances = new(Solve);

    public Flippers(double slipProbability = 0)
    {
        if (slipProbability is < 0 or >= 1 || double.IsNaN(slipProbability))
            throw new ArgumentOutOfRangeException(nameof(slipProbability), slipProbability, "The slip probability must be in [0, 1).");
        SlipProbability = slipProbability;
    }

    public double SlipProbability { get; }
    public int StateCount => Boards;
    public int ActionCount => Tiles;

    public static bool IsGoal(int board) => GoalBoards.Contains(board);

    /// <summary>A network reads a board as its nine tiles, 1 for a dot and 0 for a blank, row by row.</summary>
    public int FeatureCount => Tiles;

    public void Encode(int state, Span<float> features)
    {
        CheckBoard(state);
        if (features.Length != Tiles) throw new ArgumentException($"A board is {Tiles} numbers, not {features.Length}.", nameof(features));
        for (int i = 0; i < Tiles; i++) features[i] = state >> i & 1;
    }

    public bool IsTerminal(int state) => IsGoal(state);

    /// <summary>A random board that is not already won.</summary>
    public int Reset(Random random)
    {
        int board;
        do board = random.Next(Boards); while (IsGoal(board));
        return board;
    }

    public StepResult Step(int state, int action, Random random)
    {
        CheckBoard(state);
        if (action is < 0 or >= Tiles) throw new ArgumentOutOfRangeException(nameof(action), action, "A Flippers move flips one of the tiles 0 to 8.");
        if (IsGoal(state)) throw new InvalidOperationException($"The board {Format(state)} is already won: the game is over; reset to play again.");
        int next = SlipProbability > 0 && random.NextDouble() < SlipProbability ? state : state ^ (1 << action);
        bool won = IsGoal(next);
        return new StepResult(next, won ? 1 : 0, won);
    }

    /// <summary>The fewest moves that win from <paramref name="board"/> (0 for a won board), by breadth-first search over all 512 boards.</summary>
    public static int MinimumMoves(int board)
    {
        CheckBoard(board);
        return Distances.Value[board];
    }

    /// <summary>Breadth-first search backwards from the six goals (a flip is its own inverse, so the graph is undirected).</summary>
    private static int[] Solve()
    {
        var distance = Enumerable.Repeat(-1, Boards).ToArray();
        var queue = new Queue<int>();
        foreach (var goal in GoalBoards)
        {
            distance[goal] = 0;
            queue.Enqueue(goal);
        }
        while (queue.Count > 0)
        {
            int board = queue.Dequeue();
            for (int tile = 0; tile < Tiles; tile++)
            {
                int next = board ^ (1 << tile);
                if (distance[next] >= 0) continue;
                distance[next] = distance[board] + 1;
                queue.Enqueue(next);
            }
        }
        return distance;
    }

    /// <summary>A board as nine characters, row by row, '1' for a dot: "111000000" is the top row.</summary>
    public static string Format(int board)
    {
        CheckBoard(board);
        return string.Concat(Enumerable.Range(0, Tiles).Select(i => (board >> i & 1) == 1 ? '1' : '0'));
    }

    /// <summary>Reads a board written as nine '0'/'1' characters, row by row; anything else is an error naming it.</summary>
    public static int Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length != Tiles || text.Any(c => c is not ('0' or '1')))
            throw new FormatException($"A Flippers board is nine characters '0' or '1' (row by row, '1' a dot), not \"{text}\".");
        int board = 0;
        for (int i = 0; i < Tiles; i++) if (text[i] == '1') board |= 1 << i;
        return board;
    }

    private static void CheckBoard(int board)
    {
        if (board is < 0 or >= Boards) throw new ArgumentOutOfRangeException(nameof(board), board, "A Flippers board is a number from 0 to 511.");
    }
}

/// <summary>
/// Sutton and Barto's cliff walking (example 6.6): a 4x12 grid, start at the bottom left, goal at the bottom right,
/// the cells between them a cliff. Every move costs 1; stepping into the cliff costs 100 and sends the walker back to
/// the start. Actions: 0 up, 1 right, 2 down, 3 left (moves off the grid stay put). With exploration, SARSA learns the
/// safe path away from the edge and Q-learning the shortest path along it.
/// </summary>
public sealed class CliffWalking : IEnvironment, IStateFeatures
{
    public const int Rows = 4, Columns = 12;
    public const int Start = (Rows - 1) * Columns, Goal = Rows * Columns - 1;

    public int StateCount => Rows * Columns;
    public int ActionCount => 4;
    public bool IsTerminal(int state) => state == Goal;
    public int Reset(Random random) => Start;

    /// <summary>A network reads a cell one-hot: 48 numbers, a 1 at the walker's cell.</summary>
    public int FeatureCount => Rows * Columns;

    public void Encode(int state, Span<float> features)
    {
        if (state < 0 || state >= Rows * Columns) throw new ArgumentOutOfRangeException(nameof(state), state, $"A cliff-walking state is 0 to {Rows * Columns - 1}.");
        if (features.Length != Rows * Columns) throw new ArgumentException($"A cell is {Rows * Columns} numbers, not {features.Length}.", nameof(features));
        features.Clear();
        features[state] = 1;
    }

    public static bool IsCliff(int state) => state / Columns == Rows - 1 && state % Columns is > 0 and < Columns - 1;

    public StepResult Step(int state, int action, Random random)
    {
        if (state < 0 || state >= Rows * Columns) throw new ArgumentOutOfRangeException(nameof(state), state, $"A cliff-walking state is 0 to {Rows * Columns - 1}.");
        if (action is < 0 or > 3) throw new ArgumentOutOfRangeException(nameof(action), action, "Actions are 0 up, 1 right, 2 down, 3 left.");
        if (state == Goal) throw new InvalidOperationException("The walker is at the goal: the episode is over; reset to walk again.");
        int row = state / Columns, column = state % Columns;
        (row, column) = action switch { 0 => (Math.Max(row - 1, 0), column), 1 => (row, Math.Min(column + 1, Columns - 1)), 2 => (Math.Min(row + 1, Rows - 1), column), _ => (row, Math.Max(column - 1, 0)) };
        int next = row * Columns + column;
        if (IsCliff(next)) return new StepResult(Start, -100, false);
        return new StepResult(next, -1, next == Goal);
    }
}
