// STEPs the client had to skip, and the FRAMES_DROPPED message that reports them.
//
// Human mode never waits for the recorder: when the bounded send queue is full a
// STEP is skipped, its seq consumed, and the recorder is told before the next STEP
// that fits (docs/protocol.md, FRAMES_DROPPED), so it records a gap instead of
// silently joining frames that were never adjacent. Consecutive skips are one report.
namespace SonicRL.Tool
{
    public sealed class DropTracker
    {
        uint _firstSeq;
        uint _count;
        ulong _firstFrame;
        ulong _lastFrame;

        /// <summary>Steps skipped since the session began (across reconnects).</summary>
        public long Total { get; private set; }

        /// <summary>Skipped steps not yet reported to the recorder.</summary>
        public uint Pending => _count;

        /// <summary>One more skipped step, covering frames firstFrame..lastFrame.</summary>
        public void Skip(uint seq, ulong firstFrame, ulong lastFrame)
        {
            if (_count == 0)
            {
                _firstSeq = seq;
                _firstFrame = firstFrame;
            }
            _count++;
            _lastFrame = lastFrame;
            Total++;
        }

        /// <summary>The report of the pending skips (then none are pending), or null when there are none.</summary>
        public FramesDropped TakeReport()
        {
            if (_count == 0) return null;
            FramesDropped d = new FramesDropped { FirstSeq = _firstSeq, Count = _count, FirstFrame = _firstFrame, LastFrame = _lastFrame };
            _count = 0;
            return d;
        }

        /// <summary>A new connection: skips of the old one cannot be reported on it (its seq numbers start again).</summary>
        public void ForgetPending() => _count = 0;

        public string Warning => $"the recorder is falling behind: {Total} step(s) skipped so far (reported to it as gaps)";
    }
}
