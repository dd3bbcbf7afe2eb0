// One tool <-> recorder session over a websocket, driven by the emulator's thread:
// the thin adapter between the session rules (ClientSession, sans-I/O), the
// websocket (WebSocketTransport) and the emulator's frame loop.
//
// The host (EmuHawk's form, or the headless test client) calls OnPreFrame and
// OnPostFrame around every emulated frame and Poll from a timer between frames.
// All session state lives on that thread; the transport's threads only queue
// events, which this class decodes and feeds to the rules, sending what they
// answer. It also owns the connection's life: connect, handshake, close, and
// reconnect with growing delays (ReconnectBackoff). Nothing here blocks for long:
// after a policy-mode STEP it waits at most LockstepSpinMs for the next ACTION
// (a localhost round trip is ~1-2 ms), then lets the rules pause the emulator and
// returns, so the window stays responsive (BizHawk issue 2671 is the freeze this avoids).
using System;
using System.Diagnostics;

namespace SonicRL.Tool
{
    public sealed class RecorderSession
    {
        readonly SessionOptions _opt;
        readonly ClientSession _rules;
        readonly ReconnectBackoff _backoff;
        readonly Stopwatch _clock = Stopwatch.StartNew();
        readonly FrameRateMeter _fps = new FrameRateMeter();
        WebSocketTransport _transport;
        SessionState _state = SessionState.Idle;
        string _connection = "not connected";
        /// <summary>Why the connection failed, when the rules did not say (ClientSession.Error).</summary>
        string _error = "";
        bool _userClosed;

        /// <summary>Every EPISODE_BEGIN / STEP built, with whether it was queued (false: skipped, reported as dropped).</summary>
        public event Action<Message, bool> Sent;
        /// <summary>Every message received from the recorder, after it was handled.</summary>
        public event Action<Message> Received;
        /// <summary>Lines for a log window or the console.</summary>
        public event Action<string> Log;

        public RecorderSession(IEmulatorHost host, SessionOptions options)
        {
            _opt = options;
            _rules = new ClientSession(host, options, () => _clock.ElapsedMilliseconds);
            _rules.Log += Say;
            _backoff = new ReconnectBackoff(options.ReconnectInitialMs, options.ReconnectMaxMs);
        }

        public SessionState State => _state;
        public Welcome Welcome => _rules.Welcome;
        public string LastError => _rules.Error.Length > 0 ? _rules.Error : _error;
        public WebSocketTransport Transport => _transport;
        /// <summary>The recorder's latest STATUS this connection, or null before the first.</summary>
        public StatusMsg LastStatus => _rules.LastStatus;
        public bool IsFinished => _state == SessionState.Stopped || _state == SessionState.Failed;

        void Say(string line) => Log?.Invoke(line);

        long NowMs => _clock.ElapsedMilliseconds;

        // --- connection lifecycle -------------------------------------------------------------

        public void Connect()
        {
            if (_state == SessionState.Connecting || _state == SessionState.Handshake || _state == SessionState.Running
                || _state == SessionState.Closing) return;
            _userClosed = false;
            _error = "";
            _backoff.Reset();
            StartConnect();
        }

        void StartConnect()
        {
            Uri uri;
            try
            {
                uri = new Uri(_opt.Url);
                if (uri.Scheme != "ws" && uri.Scheme != "wss") throw new UriFormatException("the address must start with ws://");
            }
            catch (UriFormatException e)
            {
                SetFailed($"the recorder address '{_opt.Url}' is not valid ({e.Message}); enter e.g. ws://127.0.0.1:8765");
                return;
            }
            _backoff.Attempting();
            _rules.Begin();
            _transport = new WebSocketTransport(uri, _opt.QueueCapacity);
            _state = SessionState.Connecting;
            _connection = $"connecting to {_opt.Url}" + (_backoff.Attempt > 1 ? $" (attempt {_backoff.Attempt})" : "");
            Say(_connection);
            _transport.Start(_opt.ConnectTimeoutMs);
        }

        /// <summary>End the session at the user's request: send what is queued, then close with 1000.</summary>
        public void Disconnect()
        {
            _userClosed = true;
            if (_state == SessionState.WaitingToReconnect)
            {
                _state = SessionState.Stopped;
                _connection = "disconnected";
                return;
            }
            _rules.Leave();
            if (_transport != null && !IsFinished)
            {
                _connection = "disconnecting";
                _state = SessionState.Closing;
                _transport.Close(1000, "the user disconnected");
            }
        }

        /// <summary>Drop the connection at once, as a crash would.</summary>
        public void Abort()
        {
            _userClosed = true;
            _rules.Leave();
            _transport?.Abort();
        }

        void SetFailed(string error)
        {
            _error = error;
            _state = SessionState.Failed;
            _connection = "not connected";
            Say("error: " + error);
        }

        // --- driving the rules ----------------------------------------------------------------

        /// <summary>Send what the rules want sent, and follow them when they end the session.</summary>
        void Flush()
        {
            foreach (Outgoing o in _rules.TakeOutgoing())
            {
                bool queued = !o.Skipped && _transport != null && _transport.TryEnqueue(o.Data, !o.Droppable);
                if (o.Droppable && !o.Skipped && !queued) _rules.NotSent((Step)o.Message);
                if (o.Message.Kind == Kind.EpisodeBegin) Sent?.Invoke(o.Message, true);
                else if (o.Message.Kind == Kind.Step) Sent?.Invoke(o.Message, queued);
            }
            if (_rules.TakeCloseRequest(out var code, out var reason))
            {
                _transport?.Close(code, reason);
                _state = SessionState.Closing;
            }
            if (_rules.IsOver && (_state == SessionState.Handshake || _state == SessionState.Running))
                _state = SessionState.Closing;
            if (_rules.StopReceived)
                _connection = "recorder finished" + (_rules.StopText.Length > 0 ? ": " + _rules.StopText : "");
            if (_state == SessionState.Handshake && _rules.IsRunning) OnWelcomed(_rules.Welcome);
        }

        void OnWelcomed(Welcome w)
        {
            _state = SessionState.Running;
            _backoff.Reset();
            _connection = $"connected to {_opt.Url} (session {w.SessionId})";
            Say($"{_connection}, game {w.ProfileId}, {(w.Mode == Mode.Policy ? "policy" : "human")} mode, frame skip {w.FrameSkip}");
        }

        // --- per-frame hooks ------------------------------------------------------------------

        /// <summary>Call from a timer between frames (and whenever the emulator is paused).</summary>
        public void Poll()
        {
            ProcessEvents(0);
            if (_state == SessionState.WaitingToReconnect && _backoff.IsDue(NowMs))
            {
                StartConnect();
                return;
            }
            if (_state != SessionState.Handshake && _state != SessionState.Running) return;
            _rules.Tick();
            Flush();
        }

        /// <summary>Blocks at most timeoutMs for something from the recorder (headless driver loops).</summary>
        public void WaitForActivity(int timeoutMs)
        {
            if (_transport == null) { System.Threading.Thread.Sleep(timeoutMs); return; }
            TransportEvent ev = _transport.NextEvent(timeoutMs);
            if (ev != null) Handle(ev);
        }

        public void OnPreFrame()
        {
            ProcessEvents(0);
            if (_state != SessionState.Running) return;
            _rules.PreFrame();
        }

        public void OnPostFrame()
        {
            _fps.Tick();
            ProcessEvents(0);
            if (_state != SessionState.Running) return;
            bool room = _transport.Queued < _transport.Capacity;
            bool stepSent = _rules.PostFrame(room);
            Flush();
            if (!stepSent) return;
            // Lockstep: wait a moment for the next ACTION (or an EPISODE_END + RESET), then
            // let the rules pause the emulator instead of blocking the UI thread.
            long deadline = NowMs + _opt.LockstepSpinMs;
            while (_state == SessionState.Running && _rules.AwaitsPolicy)
            {
                long left = deadline - NowMs;
                if (left <= 0) break;
                TransportEvent ev = _transport.NextEvent((int)left);
                if (ev != null) Handle(ev);
            }
            if (_state != SessionState.Running) return;
            _rules.ContinueAfterStep();
            Flush();
        }

        // --- receiving ------------------------------------------------------------------------

        void ProcessEvents(int waitMs)
        {
            if (_transport == null) return;
            TransportEvent ev = _transport.NextEvent(waitMs);
            while (ev != null)
            {
                Handle(ev);
                if (_transport == null) return;
                ev = _transport.NextEvent(0);
            }
        }

        void Handle(TransportEvent ev)
        {
            switch (ev.Kind)
            {
                case TransportEventKind.Opened:
                    _rules.Greet();
                    _state = SessionState.Handshake;
                    _connection = $"connected to {_opt.Url}, handshake";
                    Say(_connection);
                    Flush();
                    break;
                case TransportEventKind.Message:
                    if (_rules.IsOver) break;
                    Message msg;
                    try
                    {
                        if (ev.Data.Length == 0)
                            throw new ProtocolException(ErrorCode.Malformed, "the recorder sent a text or empty message; only binary protocol messages are allowed");
                        msg = Codec.Decode(ev.Data);
                    }
                    catch (ProtocolException e)
                    {
                        _rules.Refuse(e.Code, e.Message);
                        Flush();
                        break;
                    }
                    _rules.Receive(msg);
                    Flush();
                    Received?.Invoke(msg);
                    break;
                case TransportEventKind.Closed:
                    OnClosed(ev.Code, ev.Reason);
                    break;
            }
        }

        void OnClosed(int code, string reason)
        {
            _rules.ReleaseEmulator();
            bool wasRunning = _state == SessionState.Running;
            _transport = null;
            string said = ErrorText.Describe(code, reason);
            if (_rules.StopReceived || (_userClosed && !_rules.Fatal))
            {
                _state = SessionState.Stopped;
                if (!_rules.StopReceived) _connection = "disconnected";
                Say("closed: " + _connection);
                return;
            }
            if (_rules.Fatal || !ReconnectBackoff.IsWorthRetrying(code))
            {
                // A refusal the user must fix (token, game, sizes, protocol): retrying would
                // only repeat it. Keep the recorder's own words (the ERROR message) if any.
                if (LastError.Length == 0) _error = "the recorder closed the connection: " + said;
                _state = SessionState.Failed;
                _connection = "not connected";
                Say("closed: " + said);
                return;
            }
            if (!_opt.Reconnect)
            {
                _error = (wasRunning ? "connection lost: " : "") + reason + " (" + ErrorText.Explain(code) + ")";
                _state = SessionState.Failed;
                _connection = "not connected";
                Say("error: " + _error);
                return;
            }
            int delay = _backoff.Schedule(NowMs);
            _connection = $"{(wasRunning ? "connection lost" : "cannot connect")} ({reason}); retrying in {(delay / 1000.0).ToString("0.0")} s";
            Say(_connection);
            _state = SessionState.WaitingToReconnect;
        }

        // --- status ---------------------------------------------------------------------------

        public SessionStatus Status()
        {
            SessionStatus s = new SessionStatus { State = _state, Connection = _connection };
            _rules.FillStatus(s);
            s.FramesPerSecond = _fps.Rate;
            if (_transport != null)
            {
                s.Queued = _transport.Queued;
                s.QueueCapacity = _transport.Capacity;
            }
            // The rules' counters run on while the connection is not Running; the wait does not.
            if (_state != SessionState.Running) s.WaitingMs = 0;
            s.Error = LastError;
            return s;
        }
    }
}
