// The client's side of a session with the recorder (docs/protocol.md), sans-I/O:
// the twin of the recorder's session rules, without a socket or a thread.
//
// RecorderSession feeds it decoded messages (Receive), the emulator's frames
// (PreFrame / PostFrame) and the passing of time (Tick, through the clock it was
// given); it answers with the messages to send (TakeOutgoing) and, when the session
// must end, the close code to send (TakeCloseRequest). It drives the emulator
// through IEmulatorHost (buttons, pause, start state), which is its subject, not I/O.
// The rules it keeps:
//  - seq numbers count every STEP of a connection from 1; an episode's steps are
//    seq - first seq of the episode;
//  - human mode never waits for anything; a STEP that finds the send queue full is
//    skipped, its seq consumed, and FRAMES_DROPPED reports it (DropTracker);
//  - policy mode is lockstep (docs/protocol.md, "Policy mode"): the next frame never
//    runs before the ACTION for the next seq. After a STEP, RecorderSession may wait
//    a moment for it (AwaitsPolicy); if it has not come, ContinueAfterStep pauses
//    the emulator, and Tick unpauses it when the ACTION arrives or gives up after
//    WELCOME's step timeout with 4007;
//  - a frame counter jump in human mode (a savestate load) closes the partial step
//    as dropped and begins a new episode.
using System;
using System.Collections.Generic;

namespace SonicRL.Tool
{
    public sealed class ClientSession
    {
        enum Await
        {
            Nothing,
            Reset,
            Action,
        }

        readonly IEmulatorHost _host;
        readonly SessionOptions _opt;
        readonly Func<long> _nowMs;
        readonly DropTracker _drops = new DropTracker();
        List<Outgoing> _outbox = new List<Outgoing>();

        // The whole session, across reconnects.
        long _unsyncedFrames;
        long _mismatchFrames;
        string _warning = "";
        string _lastEpisode = "";
        string _error = "";

        // One connection.
        EmulatorInfo _info = new EmulatorInfo();
        Welcome _welcome;
        bool _greeted;
        long _handshakeStartMs;
        bool _fatal;
        bool _stopReceived;
        bool _leaving;
        string _stopText = "";
        bool _closeRequested;
        int _closeCode;
        string _closeReason = "";
        uint _seq = 1;
        uint _episode;
        uint _episodeFirstSeq = 1;
        uint[] _masks = new uint[1];
        int _framesInStep;
        long _lastFrame = -1;
        Await _await = Await.Nothing;
        long _awaitStartMs;
        ActionMsg _action;
        ActionMsg _nextAction;
        StatusMsg _lastStatus;
        bool _pausedByUs;

        /// <summary>Lines for a log window or the console.</summary>
        public event Action<string> Log;

        /// <param name="nowMs">A monotonic clock in milliseconds (the step and handshake timeouts).</param>
        public ClientSession(IEmulatorHost host, SessionOptions options, Func<long> nowMs)
        {
            _host = host;
            _opt = options;
            _nowMs = nowMs;
        }

        public Welcome Welcome => _welcome;
        /// <summary>What the emulator declared in the HELLO of this connection.</summary>
        public EmulatorInfo Info => _info;
        /// <summary>The recorder's latest STATUS this connection, or null before the first.</summary>
        public StatusMsg LastStatus => _lastStatus;
        /// <summary>The error that ended the session, in words, or "".</summary>
        public string Error => _error;
        /// <summary>This side refused the peer, or the peer refused this side (ERROR): retrying would repeat it.</summary>
        public bool Fatal => _fatal;
        public bool StopReceived => _stopReceived;
        /// <summary>STOP's message for the user, or "".</summary>
        public string StopText => _stopText;
        /// <summary>Nothing more is accepted from the recorder (an error either way, or STOP).</summary>
        public bool IsOver => _fatal || _stopReceived;
        /// <summary>Not over, and the user has not asked to leave.</summary>
        bool Active => !IsOver && !_leaving;
        /// <summary>WELCOME arrived and the session is active: frames are streamed.</summary>
        public bool IsRunning => _welcome != null && Active;
        /// <summary>
        /// Policy mode, after a STEP: the next frame waits for the recorder (the ACTION of the next
        /// seq; or EPISODE_END, RESET, then that ACTION).
        /// </summary>
        public bool AwaitsPolicy => IsRunning && Policy && _await != Await.Nothing && !HasNextAction;
        bool HasNextAction => _await == Await.Action && _nextAction != null;
        bool Policy => _welcome != null && _welcome.Mode == Mode.Policy;

        void Say(string line) => Log?.Invoke(line);

        static ulong UnixMicros() => (ulong)((DateTime.UtcNow - new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc)).Ticks / 10);

        // --- what RecorderSession takes -------------------------------------------------------

        /// <summary>The messages to send, oldest first; the outbox is empty afterwards.</summary>
        public List<Outgoing> TakeOutgoing()
        {
            List<Outgoing> taken = _outbox;
            _outbox = new List<Outgoing>();
            return taken;
        }

        /// <summary>Whether the session asks to close the connection (after sending what is queued), and how.</summary>
        public bool TakeCloseRequest(out int code, out string reason)
        {
            code = _closeCode;
            reason = _closeReason;
            if (!_closeRequested) return false;
            _closeRequested = false;
            return true;
        }

        /// <summary>A STEP the send queue refused after all (the connection is closing): count it as dropped.</summary>
        public void NotSent(Step step)
        {
            SkipStep(step.Seq, step.Frame);
        }

        // --- connection -----------------------------------------------------------------------

        /// <summary>A new connection begins: seq numbers start again, the emulator is described anew.</summary>
        public void Begin()
        {
            _info = _host.Describe();
            _welcome = null;
            _greeted = false;
            _fatal = false;
            _stopReceived = false;
            _leaving = false;
            _stopText = "";
            _error = "";
            _closeRequested = false;
            _outbox.Clear();
            _seq = 1;
            _episode = 0;
            _episodeFirstSeq = 1;
            _framesInStep = 0;
            _lastFrame = -1;
            _await = Await.Nothing;
            _action = null;
            _nextAction = null;
            _lastStatus = null;
            _drops.ForgetPending();
        }

        /// <summary>The connection is open: say HELLO, then wait for WELCOME.</summary>
        public void Greet()
        {
            _host.ScreenSize(out var w, out var h);
            Hello hello = new Hello
            {
                ClientName = _opt.ClientName,
                ClientVersion = _opt.ClientVersion,
                Emulator = _info.Emulator,
                Core = _info.Core,
                System = _info.System,
                RomName = _info.RomName,
                RomHash = _info.RomHash,
                Game = _opt.Game ?? "",
                Mode = _opt.Mode,
                ScreenWidth = w,
                ScreenHeight = h,
                PixelFormat = _info.PixelFormat,
                RamSize = _info.RamSize,
                Buttons = _info.Buttons,
                Token = _opt.Token ?? "",
                Capabilities = Capability.SendStartState | (_info.CanLoadStartState ? Capability.LoadStartState : Capability.None),
            };
            _outbox.Add(new Outgoing(hello, Codec.Encode(hello), false));
            _greeted = true;
            _handshakeStartMs = _nowMs();
        }

        /// <summary>Refuse the recorder: tell it with ERROR, then close with the same code.</summary>
        public void Refuse(ErrorCode code, string text) => Fail(code, text, true);

        void Fail(ErrorCode code, string text, bool tellPeer)
        {
            _fatal = true;
            _error = ErrorText.Describe((int)code, text);
            Say("error: " + _error);
            ReleaseEmulator();
            if (tellPeer)
            {
                ErrorMsg e = new ErrorMsg { Code = (ushort)code, Text = text };
                _outbox.Add(new Outgoing(e, Codec.Encode(e), false));
            }
            RequestClose((int)code, text);
        }

        void RequestClose(int code, string reason)
        {
            _closeRequested = true;
            _closeCode = code;
            _closeReason = reason;
        }

        /// <summary>The user ends the session: from now on only an ERROR from the recorder is heeded.</summary>
        public void Leave()
        {
            _leaving = true;
            ReleaseEmulator();
        }

        /// <summary>Give the controller back to the player and unpause what this session paused.</summary>
        public void ReleaseEmulator()
        {
            _host.ReleaseButtons();
            if (_pausedByUs)
            {
                _pausedByUs = false;
                _host.Unpause();
            }
            _await = Await.Nothing;
        }

        // --- time -----------------------------------------------------------------------------

        /// <summary>Between frames (and while the emulator is paused): timeouts, and the lockstep's resumption.</summary>
        public void Tick()
        {
            if (!Active) return;
            long now = _nowMs();
            if (_greeted && _welcome == null && now - _handshakeStartMs > _opt.HandshakeTimeoutMs)
            {
                Fail(ErrorCode.Unexpected, $"no WELCOME from the recorder within {_opt.HandshakeTimeoutMs / 1000} s; is it a sonic-rl recorder?", false);
                return;
            }
            if (!IsRunning || !Policy) return;
            if (HasNextAction)
            {
                TakeNextAction();
            }
            else if (_await != Await.Nothing && _welcome.StepTimeoutMs > 0 && now - _awaitStartMs > _welcome.StepTimeoutMs)
            {
                string what = _await == Await.Action ? $"the policy's buttons for step {_seq}" : "the next episode (RESET)";
                Fail(ErrorCode.StepTimeout, $"waited {_welcome.StepTimeoutMs / 1000.0} s for {what}; is the policy or trainer still running?", true);
            }
        }

        // --- frames ---------------------------------------------------------------------------

        /// <summary>Before the emulator runs a frame: in policy mode, hold the ACTION's buttons (or pause).</summary>
        public void PreFrame()
        {
            if (!IsRunning || !Policy) return;
            if (_action == null && HasNextAction) TakeNextAction();
            if (_action == null)
            {
                // The emulator is running a frame the policy has not chosen buttons for:
                // the user unpaused or frame-advanced while the tool waited. The frame is
                // not part of any STEP; the frame counter jump makes the recorder log a gap.
                _unsyncedFrames++;
                _warning = $"{_unsyncedFrames} frame(s) ran without the policy's buttons (emulator unpaused by hand?); they are recorded as gaps";
                PauseForPolicy();
                return;
            }
            _host.SetButtons(_action.Buttons);
        }

        /// <summary>After the emulator ran a frame. Returns true when a policy-mode STEP just went out (see AwaitsPolicy).</summary>
        /// <param name="sendQueueHasRoom">Whether the send queue can take another STEP now (human mode skips it otherwise).</param>
        public bool PostFrame(bool sendQueueHasRoom)
        {
            if (!IsRunning) return false;
            long frame = _host.FrameCount;
            if (Policy) return PolicyPostFrame(frame);
            HumanPostFrame(frame, sendQueueHasRoom);
            return false;
        }

        void HumanPostFrame(long frame, bool sendQueueHasRoom)
        {
            if (_lastFrame >= 0 && frame != _lastFrame + 1)
            {
                // A savestate load, a rewind, or a movie seek: the frames before belong to
                // another timeline. Close the partial step honestly and start a new episode
                // from here (the recorder saves the open one as client_stop).
                if (_framesInStep > 0)
                {
                    _drops.Skip(_seq, (ulong)(_lastFrame - _framesInStep + 1), (ulong)_lastFrame);
                    _warning = _drops.Warning;
                    _seq++;
                    ReportDrops();
                }
                _framesInStep = 0;
                Say($"frame counter jumped from {_lastFrame} to {frame} (savestate loaded?): starting a new episode");
                _episode++;
                SendEpisodeBegin(_episode);
                return;
            }
            _masks[_framesInStep++] = _host.PressedMask();
            _lastFrame = frame;
            if (_framesInStep == _masks.Length)
            {
                SendStep(frame, true, sendQueueHasRoom);
                _framesInStep = 0;
            }
        }

        bool PolicyPostFrame(long frame)
        {
            if (_action == null)
            {
                _lastFrame = frame;
                return false;
            }
            if (_lastFrame >= 0 && frame != _lastFrame + 1)
                Say($"frame counter jumped from {_lastFrame} to {frame}; the recorder records a gap");
            if (_host.PressedMask() != _action.Buttons)
            {
                _mismatchFrames++;
                _warning = $"{_mismatchFrames} frame(s) where the core did not get the policy's buttons (a movie playing, or a held key?)";
            }
            _masks[_framesInStep++] = _action.Buttons;
            _lastFrame = frame;
            if (_framesInStep < _masks.Length) return false;
            SendStep(frame, false, true);
            _framesInStep = 0;
            _action = null;
            _await = Await.Action;
            _awaitStartMs = _nowMs();
            return IsRunning;
        }

        /// <summary>
        /// After a policy-mode STEP (and whatever wait RecorderSession allowed): go on with the
        /// next ACTION if it came, else pause the emulator instead of blocking its thread.
        /// </summary>
        public void ContinueAfterStep()
        {
            if (!IsRunning) return;
            if (HasNextAction) TakeNextAction();
            else PauseForPolicy();
        }

        void TakeNextAction()
        {
            _action = _nextAction;
            _nextAction = null;
            _await = Await.Nothing;
            if (_pausedByUs)
            {
                _pausedByUs = false;
                _host.Unpause();
            }
        }

        void PauseForPolicy()
        {
            if (_host.IsPaused) return;
            _host.Pause();
            _pausedByUs = true;
        }

        // --- sending --------------------------------------------------------------------------

        bool Fits(byte[] data, string what)
        {
            if (!_opt.CheckSizeBeforeSending || data.Length <= Limits.MaxMessageBytes) return true;
            Fail(ErrorCode.MessageTooBig, $"{what} would be {data.Length} bytes, over the 16 MiB limit; lower the screen size", false);
            return false;
        }

        bool Sends(SendFlag flag) => (_welcome.Send & flag) != 0;

        void SendEpisodeBegin(uint episode)
        {
            EpisodeBegin b = new EpisodeBegin
            {
                Episode = episode,
                Frame = (ulong)Math.Max(0, _host.FrameCount),
                TimeUs = UnixMicros(),
            };
            if (Sends(SendFlag.StartState)) b.StartState = _host.StartStateBytes();
            b.Observation = _host.Capture(Sends(SendFlag.Screen), Sends(SendFlag.Ram));
            byte[] data = Codec.Encode(b);
            if (!Fits(data, "EPISODE_BEGIN")) return;
            _outbox.Add(new Outgoing(b, data, false));
            _lastFrame = _host.FrameCount;
            _episode = episode;
            _episodeFirstSeq = _seq;
            _framesInStep = 0;
        }

        void SendStep(long frame, bool droppable, bool sendQueueHasRoom)
        {
            Step s = new Step
            {
                Seq = _seq++,
                Frame = (ulong)frame,
                TimeUs = UnixMicros(),
                Buttons = (uint[])_masks.Clone(),
            };
            if (droppable && !sendQueueHasRoom)
            {
                // The recorder is falling behind: skip this STEP without building it,
                // remember it, and tell the recorder before the next STEP that fits.
                SkipStep(s.Seq, s.Frame);
                _outbox.Add(new Outgoing(s, null, true));
                return;
            }
            s.Observation = _host.Capture(Sends(SendFlag.Screen), Sends(SendFlag.Ram));
            byte[] data = Codec.Encode(s);
            if (!Fits(data, "STEP")) return;
            ReportDrops();
            _outbox.Add(new Outgoing(s, data, droppable));
        }

        void SkipStep(uint seq, ulong lastFrame)
        {
            _drops.Skip(seq, lastFrame - (ulong)_masks.Length + 1, lastFrame);
            _warning = _drops.Warning;
        }

        void ReportDrops()
        {
            FramesDropped d = _drops.TakeReport();
            if (d == null) return;
            _outbox.Add(new Outgoing(d, Codec.Encode(d), false));
            Say($"told the recorder that {d.Count} step(s) from seq {d.FirstSeq} were skipped");
        }

        // --- receiving ------------------------------------------------------------------------

        static ProtocolException Unexpected(string text) => new ProtocolException(ErrorCode.Unexpected, text);

        /// <summary>A decoded message from the recorder. A message that breaks the rules ends the session (ERROR, close).</summary>
        public void Receive(Message msg)
        {
            if (IsOver) return;
            try
            {
                Handle(msg);
            }
            catch (ProtocolException e)
            {
                Fail(e.Code, e.Message, true);
            }
        }

        void Handle(Message msg)
        {
            if (msg.Kind == Kind.Error)
            {
                ErrorMsg e = (ErrorMsg)msg;
                _fatal = true;
                _error = "the recorder refused: " + ErrorText.Describe(e.Code, e.Text);
                Say(_error);
                ReleaseEmulator();
                return;
            }
            if (_leaving) return;
            if (_welcome == null)
            {
                if (msg.Kind != Kind.Welcome) throw Unexpected($"{msg.Kind} before WELCOME");
                OnWelcome((Welcome)msg);
                return;
            }
            switch (msg.Kind)
            {
                case Kind.Action:
                    OnAction((ActionMsg)msg);
                    break;
                case Kind.Reset:
                    OnReset((Reset)msg);
                    break;
                case Kind.EpisodeEnd:
                    OnEpisodeEnd((EpisodeEnd)msg);
                    break;
                case Kind.Status:
                    // Display only, in both modes: it never touches the lockstep or the buttons.
                    _lastStatus = (StatusMsg)msg;
                    break;
                case Kind.Stop:
                    OnStop((Stop)msg);
                    break;
                default:
                    throw Unexpected($"{msg.Kind} is not sent by a recorder");
            }
        }

        void OnWelcome(Welcome w)
        {
            if (w.FrameSkip < 1) throw new ProtocolException(ErrorCode.Malformed, "WELCOME frame skip is 0");
            if (w.Mode != Mode.Human && w.Mode != Mode.Policy) throw new ProtocolException(ErrorCode.Malformed, "WELCOME mode must be human or policy");
            _welcome = w;
            _masks = new uint[w.FrameSkip];
            if (w.Mode == Mode.Human)
            {
                SendEpisodeBegin(0);
            }
            else
            {
                _await = Await.Reset;
                _awaitStartMs = _nowMs();
                PauseForPolicy();
            }
        }

        void OnAction(ActionMsg a)
        {
            if (!Policy) throw Unexpected("ACTION in human mode");
            if (_await != Await.Action || _nextAction != null)
                throw Unexpected($"ACTION for seq {a.Seq} while no ACTION was awaited");
            if (a.Seq != _seq) throw Unexpected($"ACTION for seq {a.Seq}, expected seq {_seq}");
            _nextAction = a;
        }

        void OnReset(Reset r)
        {
            if (!Policy) throw Unexpected("RESET in human mode");
            if (_await != Await.Reset) throw Unexpected("RESET in the middle of an episode");
            if (r.LoadStartState && !_host.LoadStartState(out var err))
            {
                Fail(ErrorCode.BadConfig, "cannot load the start state: " + err, true);
                return;
            }
            SendEpisodeBegin(r.Episode);
            _await = Await.Action;
            _awaitStartMs = _nowMs();
        }

        void OnEpisodeEnd(EpisodeEnd e)
        {
            string saved = e.FileName.Length > 0 ? ", saved " + e.FileName : "";
            _lastEpisode = $"episode {e.Episode}: {e.Steps} steps, return {e.Return.ToString("0.###")}, {EndReasonText.Name(e.Reason)}{saved}";
            Say(_lastEpisode);
            if (Policy)
            {
                // RESET or STOP comes next; the emulator stays paused meanwhile.
                _await = Await.Reset;
                _awaitStartMs = _nowMs();
                _nextAction = null;
            }
            else
            {
                // Human mode: the next episode starts from the last observation at once.
                _episode = e.Episode + 1;
                _episodeFirstSeq += e.Steps;
            }
        }

        void OnStop(Stop s)
        {
            _stopReceived = true;
            _stopText = s.Text;
            string why = s.Reason == StopReason.Done ? "done" : "recorder shutting down";
            Say("STOP: " + why + (s.Text.Length > 0 ? " - " + s.Text : ""));
            ReleaseEmulator();
            RequestClose(1000, "stop received");
        }

        // --- status ---------------------------------------------------------------------------

        /// <summary>The session's part of what the window shows.</summary>
        public void FillStatus(SessionStatus s)
        {
            if (_welcome != null)
            {
                s.Mode = _welcome.Mode == Mode.Policy ? "policy plays" : "human plays (recording)";
                s.SessionId = _welcome.SessionId;
                s.Profile = _welcome.ProfileId;
                s.StepTimeoutMs = _welcome.StepTimeoutMs;
            }
            s.Episode = _episode;
            s.Step = (long)_seq - _episodeFirstSeq;
            s.LastEpisode = _lastEpisode;
            // A STATUS of an episode that has ended says nothing about the one being played.
            if (_lastStatus != null && _lastStatus.Episode == _episode)
            {
                s.HasReward = true;
                s.LastReward = _lastStatus.LastReward;
                s.EpisodeReturn = _lastStatus.Return;
                s.RewardStep = _lastStatus.Steps;
            }
            s.DroppedSteps = _drops.Total;
            s.UnsyncedFrames = _unsyncedFrames;
            s.ButtonMismatchFrames = _mismatchFrames;
            if (IsRunning && _await != Await.Nothing) s.WaitingMs = _nowMs() - _awaitStartMs;
            s.Warning = _warning;
        }
    }
}
