// The tool window: a thin form over RecorderSession and BizHawkHost.
//
// It derives from plain System.Windows.Forms.Form and implements
// IExternalToolForm itself (EmuHawk's loader checks only the interface and the
// [ExternalTool] attribute), so it compiles against BizHawk.Client.Common,
// BizHawk.Emulation.Common and BizHawk.Common without EmuHawk.exe.
// Frame order in EmuHawk: overrides cleared -> PreFrame -> FrameAdvance -> PostFrame;
// the form forwards those to the session, and a 5 ms timer polls between frames
// (and while the emulator is paused waiting for the policy).
using System;
using System.Drawing;
using System.Windows.Forms;
using BizHawk.Client.Common;
using BizHawk.Emulation.Common;
using SonicRL.Tool;

namespace SonicRL.Tool.BizHawk
{
    // Any system with a ROM loaded (issue 9 item 6): the host finds the RAM domain and player 1's pad.
    [ExternalTool("sonic-rl recorder", Description = "Stream frames, RAM and inputs to the sonic-rl recorder; let its policy play")]
    [ExternalToolApplicability.AnyRomLoaded]
    public sealed class RecorderToolForm : Form, IExternalToolForm
    {
        /// <summary>Set by EmuHawk's loader (every ApiContainer property is injected).</summary>
        public ApiContainer ApiContainer { get; set; }

        [RequiredService]
        public IVideoProvider VideoProvider { get; set; }

        [RequiredService]
        public IEmulator Emulator { get; set; }

        /// <summary>For the RAM domain's byte order; a core without memory domains leaves it null.</summary>
        [OptionalService]
        public IMemoryDomains MemoryDomains { get; set; }

        readonly TextBox _url = new TextBox { Text = "ws://127.0.0.1:8765", Width = 260 };
        readonly TextBox _token = new TextBox { Width = 260, UseSystemPasswordChar = true };
        readonly ComboBox _mode = new ComboBox { DropDownStyle = ComboBoxStyle.DropDownList, Width = 260 };
        readonly TextBox _game = new TextBox { Width = 260 };
        readonly TextBox _startState = new TextBox { Width = 200 };
        readonly Button _browse = new Button { Text = "...", Width = 55 };
        readonly NumericUpDown _slot = new NumericUpDown { Minimum = 0, Maximum = 10, Value = 1, Width = 60 };
        readonly Button _connect = new Button { Text = "Connect", Width = 125 };
        readonly Button _disconnect = new Button { Text = "Disconnect", Width = 125, Enabled = false };
        readonly Label _status = new Label { AutoSize = false, Width = 440, Height = 230 };
        readonly Timer _timer = new Timer { Interval = 5 };
        RecorderSession _session;
        BizHawkHost _host;
        string _hostError = "";
        int _ticks;

        public RecorderToolForm()
        {
            Text = "sonic-rl recorder";
            ClientSize = new Size(460, 485);
            _mode.Items.AddRange(new object[] { "recorder decides", "human plays (record)", "policy plays" });
            _mode.SelectedIndex = 0;
            TableLayoutPanel grid = new TableLayoutPanel { Dock = DockStyle.Fill, ColumnCount = 2, Padding = new Padding(8) };
            AddRow(grid, "Recorder address", _url);
            AddRow(grid, "Token (optional)", _token);
            AddRow(grid, "Mode", _mode);
            AddRow(grid, "Game profile (optional)", _game);
            FlowLayoutPanel state = new FlowLayoutPanel { AutoSize = true };
            state.Controls.Add(_startState);
            state.Controls.Add(_browse);
            AddRow(grid, "Start state file", state);
            AddRow(grid, "or savestate slot (0 = none)", _slot);
            FlowLayoutPanel buttons = new FlowLayoutPanel { AutoSize = true };
            buttons.Controls.Add(_connect);
            buttons.Controls.Add(_disconnect);
            AddRow(grid, "", buttons);
            grid.Controls.Add(_status);
            grid.SetColumnSpan(_status, 2);
            Controls.Add(grid);
            _status.Text = "not connected. Start the recorder (sonic-rec record), then press Connect.";
            _connect.Click += (s, e) => OnConnect();
            _disconnect.Click += (s, e) => _session?.Disconnect();
            _browse.Click += (s, e) => Browse();
            _timer.Tick += (s, e) => OnTimer();
            FormClosing += (s, e) => { _session?.Disconnect(); _timer.Stop(); };
            _timer.Start();
        }

        static void AddRow(TableLayoutPanel grid, string label, Control control)
        {
            grid.Controls.Add(new Label { Text = label, AutoSize = true, Anchor = AnchorStyles.Left });
            grid.Controls.Add(control);
        }

        void Browse()
        {
            using (OpenFileDialog dlg = new OpenFileDialog { Filter = "BizHawk savestates (*.State)|*.State|All files|*.*" })
            {
                if (dlg.ShowDialog(this) == DialogResult.OK) _startState.Text = dlg.FileName;
            }
        }

        void OnConnect()
        {
            if (ApiContainer == null || VideoProvider == null || Emulator == null)
            {
                _status.Text = "ERROR: no game is running; load a ROM first (File > Open ROM).";
                return;
            }
            _host = MakeHost();
            if (_host == null)
            {
                _status.Text = "ERROR: " + _hostError;
                return;
            }
            SessionOptions opt = new SessionOptions
            {
                Url = _url.Text.Trim(),
                Token = _token.Text,
                Game = _game.Text.Trim(),
                Mode = _mode.SelectedIndex == 1 ? Mode.Human : _mode.SelectedIndex == 2 ? Mode.Policy : Mode.Any,
            };
            _session = new RecorderSession(_host, opt);
            _session.Connect();
            RefreshStatus();
        }

        /// <summary>The host for the loaded core, or null (then _hostError says why).</summary>
        BizHawkHost MakeHost()
        {
            try
            {
                _hostError = "";
                return new BizHawkHost(ApiContainer, VideoProvider, Emulator, MemoryDomains, _startState.Text.Trim(), (int)_slot.Value);
            }
            catch (Exception e)
            {
                // A core without memory domains or a controller definition: say so instead of failing inside EmuHawk.
                _hostError = $"cannot read this core's controller or memory domains ({e.Message}); the tool cannot record it";
                return null;
            }
        }

        void OnTimer()
        {
            if (_session == null) return;
            _session.Poll();
            // Redraw the words about 4 times a second, not on every tick.
            if (++_ticks % 50 == 0 || _session.IsFinished) RefreshStatus();
        }

        void RefreshStatus()
        {
            if (_session == null)
            {
                _connect.Enabled = true;
                _disconnect.Enabled = false;
                _status.Text = "not connected. Start the recorder (sonic-rec record), then press Connect."
                               + (_host != null ? "\n" + Describe(_host.Describe()) : "")
                               + (_hostError.Length > 0 ? "\nERROR: " + _hostError : "");
                return;
            }
            SessionStatus s = _session.Status();
            bool live = !_session.IsFinished && s.State != SessionState.Idle;
            _connect.Enabled = !live;
            _disconnect.Enabled = live;
            string text = "Connection: " + s.Connection;
            if (s.Mode.Length > 0) text += "\nMode: " + s.Mode + (s.Profile.Length > 0 ? " - game " + s.Profile : "");
            if (s.State == SessionState.Running)
            {
                text += "\nEpisode " + s.Episode + ", step " + s.Step + ", " + s.FramesPerSecond.ToString("0") + " frames/s";
                // From the recorder's STATUS (every 15 steps): it computes rewards from RAM with the game profile.
                text += s.HasReward
                    ? "\nLast reward: " + s.LastReward.ToString("0.###") + " (return so far " + s.EpisodeReturn.ToString("0.###") + ")"
                    : "\nLast reward: none yet this episode (the recorder reports it every 15 steps)";
                text += "\nSend queue: " + s.Queued + " of " + s.QueueCapacity;
            }
            if (s.WaitingMs > 0)
                text += "\nWaiting for the policy: " + (s.WaitingMs / 1000.0).ToString("0.0") + " s (gives up after "
                        + (s.StepTimeoutMs / 1000.0).ToString("0.0") + " s); the game is paused meanwhile";
            if (s.LastEpisode.Length > 0) text += "\nLast episode: " + s.LastEpisode;
            if (_host != null) text += "\n" + Describe(_host.Describe());
            if (s.Warning.Length > 0) text += "\nWarning: " + s.Warning;
            if (s.Error.Length > 0) text += "\nERROR: " + s.Error;
            _status.Text = text;
        }

        /// <summary>The system, the RAM domain the tool chose and player 1's buttons; any warning about them.</summary>
        static string Describe(EmulatorInfo info)
        {
            return "Emulator: " + info.Summary() + (info.Warning.Length > 0 ? "\nWarning: " + info.Warning : "");
        }

        // --- IToolForm ------------------------------------------------------------------------

        public void UpdateValues(ToolFormUpdateType type)
        {
            if (_session == null) return;
            if (type == ToolFormUpdateType.PreFrame || type == ToolFormUpdateType.FastPreFrame) _session.OnPreFrame();
            else if (type == ToolFormUpdateType.PostFrame || type == ToolFormUpdateType.FastPostFrame) _session.OnPostFrame();
            else _session.Poll();
        }

        /// <summary>Called after injection, again on every ROM load: a new ROM needs a new session.</summary>
        public void Restart()
        {
            // Another ROM may be another system: find its RAM domain and buttons again, and show them.
            _host = ApiContainer != null && VideoProvider != null && Emulator != null ? MakeHost() : null;
            if (_session != null && !_session.IsFinished)
            {
                _session.Disconnect();
                _status.Text = "A ROM was loaded, so the session was closed; press Connect to start a new one."
                               + (_host != null ? "\n" + Describe(_host.Describe()) : "");
                return;
            }
            _session = null;
            RefreshStatus();
        }

        public bool AskSaveChanges() => true;

        public bool IsActive => true;

        public bool IsLoaded => true;
    }
}
