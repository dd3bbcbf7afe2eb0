// What the form shows, in plain words, and the frame-rate meter behind "frames/s".
using System.Diagnostics;

namespace SonicRL.Tool
{
    public enum SessionState
    {
        Idle,
        Connecting,
        Handshake,
        Running,
        WaitingToReconnect,
        /// <summary>Closing after STOP, an error or the user's Disconnect; no more frames are streamed.</summary>
        Closing,
        Stopped,
        Failed,
    }

    /// <summary>A snapshot of the session for display; every field is already in words or numbers.</summary>
    public sealed class SessionStatus
    {
        public SessionState State;
        public string Connection = "not connected";
        public string Mode = "";
        public string SessionId = "";
        public string Profile = "";
        public uint Episode;
        public long Step;
        public string LastEpisode = "";
        /// <summary>Whether the recorder has reported a reward for the current episode yet (STATUS).</summary>
        public bool HasReward;
        /// <summary>Reward of the step the latest STATUS reports on (the recorder computes it from RAM).</summary>
        public double LastReward;
        /// <summary>The current episode's return up to that step.</summary>
        public double EpisodeReturn;
        /// <summary>The episode step that STATUS reports on (it comes every 15 steps).</summary>
        public uint RewardStep;
        public double FramesPerSecond;
        public int Queued;
        public int QueueCapacity;
        public long DroppedSteps;
        public long UnsyncedFrames;
        public long ButtonMismatchFrames;
        /// <summary>Milliseconds spent waiting for the recorder in policy mode now (0 when not waiting).</summary>
        public long WaitingMs;
        public long StepTimeoutMs;
        /// <summary>The current warning (recorder falling behind, frames run without the policy), or "".</summary>
        public string Warning = "";
        /// <summary>The last error, with what to do about it, or "".</summary>
        public string Error = "";

        /// <summary>"last reward 4 (return so far 60)", as the window shows it.</summary>
        public string RewardText()
        {
            return "last reward " + LastReward.ToString("0.###") + " (return so far " + EpisodeReturn.ToString("0.###") + ")";
        }

        public string Summary()
        {
            string s = Connection;
            if (State == SessionState.Running)
                s += " | " + Mode + " | episode " + Episode + ", step " + Step + " | " + FramesPerSecond.ToString("0") + " frames/s";
            if (State == SessionState.Running && HasReward)
                s += " | " + RewardText();
            if (WaitingMs > 0)
                s += " | waiting for the policy " + (WaitingMs / 1000.0).ToString("0.0") + " s of " + (StepTimeoutMs / 1000.0).ToString("0.0") + " s";
            if (LastEpisode.Length > 0) s += " | last: " + LastEpisode;
            if (Warning.Length > 0) s += " | WARNING: " + Warning;
            if (Error.Length > 0) s += " | ERROR: " + Error;
            return s;
        }
    }

    /// <summary>Frames per second over windows of about one second.</summary>
    public sealed class FrameRateMeter
    {
        readonly Stopwatch _clock = Stopwatch.StartNew();
        long _windowStartMs;
        int _frames;
        double _rate;

        public double Rate { get { return _rate; } }

        public void Tick()
        {
            _frames++;
            long now = _clock.ElapsedMilliseconds;
            long span = now - _windowStartMs;
            if (span >= 1000)
            {
                _rate = _frames * 1000.0 / span;
                _frames = 0;
                _windowStartMs = now;
            }
        }
    }
}
