using System.Threading.Channels;

namespace MlNetDeep.Serving;

/// <summary>
/// Gathers the rows of concurrent requests into one batch (up to <see cref="ServingOptions.MicroBatchMaxRows"/> rows,
/// waiting at most <see cref="ServingOptions.MicroBatchMaxDelay"/> for more), scores it with one forward pass of the
/// current model, and hands each request its own rows' outputs. A batch that fails fails each of its requests with
/// the error; a request whose rows are bad never joins a batch (its rows are checked when parsed). When every request
/// the service is handling is already in the batch, it is scored at once: a lone client never waits. At most
/// <see cref="ServingOptions.MicroBatchQueueLimit"/> requests wait (queued or being scored); one more is refused with
/// <see cref="ServiceBusyException"/> (503). Each waiting request holds its own reference on its model, so a request
/// that times out and lets its lease go cannot free a model the batcher is still scoring with.
/// </summary>
internal sealed class MicroBatcher : IAsyncDisposable
{
    private sealed record Pending(LoadedModel Model, RowBatch Rows, TaskCompletionSource<IReadOnlyList<ReadOnlyMemory<byte>>> Result, CancellationToken Cancellation);

    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ServingOptions _options;
    private readonly ServingMetrics _metrics;
    private readonly Task _loop;

    private readonly Func<int> _activeRequests;
    private int _pending;

    /// <summary>Requests accepted and not yet answered.</summary>
    public int Waiting => Volatile.Read(ref _pending);

    /// <param name="options">The batch size, delay and queue limit.</param>
    /// <param name="metrics">Where the rows per batch are recorded.</param>
    /// <param name="activeRequests">How many requests are being handled now: a batch holding all of them is scored at once, without waiting.</param>
    public MicroBatcher(ServingOptions options, ServingMetrics metrics, Func<int> activeRequests)
    {
        _activeRequests = activeRequests;
        _options = options;
        _metrics = metrics;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Scores <paramref name="rows"/> (parsed for <paramref name="model"/>, which the caller holds a lease on) in the next micro-batch.</summary>
    public Task<IReadOnlyList<ReadOnlyMemory<byte>>> ScoreAsync(LoadedModel model, RowBatch rows, CancellationToken cancellation)
    {
        if (Interlocked.Increment(ref _pending) > _options.MicroBatchQueueLimit)
        {
            Interlocked.Decrement(ref _pending);
            throw new ServiceBusyException($"The micro-batch queue is full ({_options.MicroBatchQueueLimit} requests waiting).");
        }
        if (!model.TryAcquire())
        {
            Interlocked.Decrement(ref _pending);
            throw new ObjectDisposedException(nameof(LoadedModel));
        }
        var pending = new Pending(model, rows, new TaskCompletionSource<IReadOnlyList<ReadOnlyMemory<byte>>>(TaskCreationOptions.RunContinuationsAsynchronously), cancellation);
        // Whatever ends the request's wait (its rows scored, a failure, its cancellation), the slot and the model reference are given back once.
        _ = pending.Result.Task.ContinueWith(_ =>
        {
            model.Release();
            Interlocked.Decrement(ref _pending);
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        if (!_queue.Writer.TryWrite(pending))
        {
            pending.Result.TrySetException(new ObjectDisposedException(nameof(MicroBatcher)));
            throw new ObjectDisposedException(nameof(MicroBatcher));
        }
        return pending.Result.Task.WaitAsync(cancellation);
    }

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<Pending>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            int rows = 0;
            var deadline = DateTime.UtcNow + _options.MicroBatchMaxDelay;
            while (rows < _options.MicroBatchMaxRows)
            {
                if (reader.TryRead(out var next))
                {
                    if (next.Cancellation.IsCancellationRequested) { next.Result.TrySetCanceled(next.Cancellation); continue; }
                    batch.Add(next);
                    rows += next.Rows.Count;
                    continue;
                }
                var wait = deadline - DateTime.UtcNow;
                if (batch.Count > 0 && (wait <= TimeSpan.Zero || batch.Count >= _activeRequests())) break;
                if (batch.Count == 0) { if (!await reader.WaitToReadAsync().ConfigureAwait(false)) return; continue; }
                using var timeout = new CancellationTokenSource(wait);
                try { if (!await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false)) break; }
                catch (OperationCanceledException) { break; }
            }
            if (batch.Count == 0) continue;
            // Requests parsed for different models (a reload happened in between) are scored by their own model.
            foreach (var group in batch.GroupBy(p => p.Model)) Score(group.Key, group.ToList());
        }
    }

    private void Score(LoadedModel model, List<Pending> batch)
    {
        try
        {
            var merged = RowBatch.Concat(batch.Select(p => p.Rows).ToList());
            var outputs = OutputWriter.Score(model, merged, CancellationToken.None);
            _metrics.BatchRows.Record(merged.Count);
            int offset = 0;
            foreach (var pending in batch)
            {
                var rows = new ReadOnlyMemory<byte>[pending.Rows.Count];
                for (int i = 0; i < rows.Length; i++) rows[i] = outputs[offset + i];
                pending.Result.TrySetResult(rows);
                offset += pending.Rows.Count;
            }
        }
        catch (Exception e)
        {
            foreach (var pending in batch) pending.Result.TrySetException(e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
        while (_queue.Reader.TryRead(out var left)) left.Result.TrySetCanceled();
    }
}
