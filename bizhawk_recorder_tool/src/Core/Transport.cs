// The websocket under a session: connect, a bounded send queue drained by one
// thread, a receive thread, and events handed to the UI thread through a queue.
//
// Nothing here ever blocks its caller for long: EmuHawk calls the tool on its UI
// thread, and a blocking socket call there froze the window in earlier bridges
// (BizHawk issue 2671). Sends only enqueue; receives arrive as events that the
// session drains when it polls.
using System;
using System.Collections.Generic;
using System.Net.WebSockets;
using System.Threading;

namespace SonicRL.Tool
{
    public enum TransportEventKind
    {
        Opened,
        Message,
        /// <summary>The connection is over; Code/Reason say why (1006 when no close frame came).</summary>
        Closed,
    }

    public sealed class TransportEvent
    {
        public TransportEventKind Kind;
        public byte[] Data;
        public int Code;
        public string Reason = "";
    }

    public sealed class WebSocketTransport
    {
        readonly Uri _uri;
        readonly int _capacity;
        readonly object _lock = new object();
        readonly Queue<byte[]> _sendQueue = new Queue<byte[]>();
        readonly Queue<TransportEvent> _events = new Queue<TransportEvent>();
        readonly AutoResetEvent _eventSignal = new AutoResetEvent(false);
        ClientWebSocket _ws;
        int _bulkQueued;
        bool _closing;
        int _closeCode = 1000;
        string _closeReason = "";
        bool _closedReported;
        bool _sendHeld;

        /// <param name="capacity">How many STEP-sized (bulk) messages may wait to be sent.</param>
        public WebSocketTransport(Uri uri, int capacity)
        {
            _uri = uri;
            _capacity = Math.Max(1, capacity);
        }

        public int Capacity { get { return _capacity; } }

        /// <summary>Bulk messages waiting to be sent.</summary>
        public int Queued { get { lock (_lock) return _bulkQueued; } }

        /// <summary>Holds the sender thread (diagnostics and tests: simulates a recorder that falls behind).</summary>
        public bool SendHeld
        {
            get { lock (_lock) return _sendHeld; }
            set { lock (_lock) { _sendHeld = value; Monitor.PulseAll(_lock); } }
        }

        public void Start(int connectTimeoutMs)
        {
            Thread t = new Thread(() => Run(connectTimeoutMs));
            t.IsBackground = true;
            t.Name = "sonic-rl websocket";
            t.Start();
        }

        void Run(int connectTimeoutMs)
        {
            ClientWebSocket ws = new ClientWebSocket();
            try
            {
                using (CancellationTokenSource cts = new CancellationTokenSource(connectTimeoutMs))
                    ws.ConnectAsync(_uri, cts.Token).Wait();
            }
            catch (Exception e)
            {
                ReportClosed(1006, "cannot connect to " + _uri + ": " + Innermost(e).Message);
                ws.Dispose();
                return;
            }
            lock (_lock) _ws = ws;
            Push(new TransportEvent { Kind = TransportEventKind.Opened });
            Thread sender = new Thread(SendLoop);
            sender.IsBackground = true;
            sender.Name = "sonic-rl websocket send";
            sender.Start();
            ReceiveLoop(ws);
        }

        static Exception Innermost(Exception e)
        {
            while (e.InnerException != null) e = e.InnerException;
            return e;
        }

        void ReceiveLoop(ClientWebSocket ws)
        {
            byte[] buf = new byte[64 * 1024];
            int used = 0;
            try
            {
                while (true)
                {
                    if (buf.Length - used < 16 * 1024) Array.Resize(ref buf, buf.Length * 2);
                    WebSocketReceiveResult res = ws.ReceiveAsync(new ArraySegment<byte>(buf, used, buf.Length - used), CancellationToken.None).Result;
                    if (res.MessageType == WebSocketMessageType.Close)
                    {
                        int code = res.CloseStatus.HasValue ? (int)res.CloseStatus.Value : 1005;
                        ReportClosed(code, res.CloseStatusDescription ?? "");
                        try { ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None).Wait(1000); }
                        catch (Exception) { }
                        return;
                    }
                    used += res.Count;
                    if (used > Limits.MaxMessageBytes)
                    {
                        Close(1009, "message from the recorder exceeds 16 MiB");
                        ReportClosed(1009, "the recorder sent a message over 16 MiB");
                        return;
                    }
                    if (!res.EndOfMessage) continue;
                    byte[] msg = new byte[used];
                    Buffer.BlockCopy(buf, 0, msg, 0, used);
                    used = 0;
                    if (res.MessageType == WebSocketMessageType.Text)
                    {
                        // Text messages are not part of the protocol: hand them on as an
                        // empty binary so the session answers with ERROR 4000.
                        msg = new byte[0];
                    }
                    Push(new TransportEvent { Kind = TransportEventKind.Message, Data = msg });
                }
            }
            catch (Exception e)
            {
                string why;
                lock (_lock) why = _closing ? _closeReason : "connection lost: " + Innermost(e).Message;
                int code;
                lock (_lock) code = _closing ? _closeCode : 1006;
                ReportClosed(code, why);
            }
        }

        void SendLoop()
        {
            while (true)
            {
                byte[] msg;
                ClientWebSocket ws;
                lock (_lock)
                {
                    while ((_sendQueue.Count == 0 || _sendHeld) && !(_closing && _sendQueue.Count == 0) && !_closedReported)
                        Monitor.Wait(_lock);
                    if (_closedReported) return;
                    if (_sendQueue.Count == 0)
                    {
                        // Closing and drained: say goodbye with the code the session chose.
                        ws = _ws;
                        msg = null;
                    }
                    else
                    {
                        msg = _sendQueue.Peek();
                        ws = _ws;
                    }
                }
                if (msg == null)
                {
                    int code;
                    string reason;
                    lock (_lock) { code = _closeCode; reason = _closeReason; }
                    try
                    {
                        ws.CloseOutputAsync((WebSocketCloseStatus)code, CutReason(reason), CancellationToken.None).Wait(2000);
                    }
                    catch (Exception) { }
                    // The receive loop reports Closed when the recorder answers the close;
                    // if it never does, abort after a grace period so nothing hangs.
                    Thread.Sleep(1500);
                    try { ws.Abort(); } catch (Exception) { }
                    ReportClosed(code, reason);
                    return;
                }
                try
                {
                    ws.SendAsync(new ArraySegment<byte>(msg), WebSocketMessageType.Binary, true, CancellationToken.None).Wait();
                }
                catch (Exception e)
                {
                    // The receive loop normally sees the recorder's close frame (e.g. 1009)
                    // and reports it; this is only the fallback when it does not.
                    Thread.Sleep(500);
                    ReportClosed(1006, "sending failed: " + Innermost(e).Message);
                    return;
                }
                lock (_lock)
                {
                    _sendQueue.Dequeue();
                    if (msg.Length > 64 * 1024 || IsBulk(msg)) _bulkQueued--;
                    Monitor.PulseAll(_lock);
                }
            }
        }

        static bool IsBulk(byte[] msg)
        {
            return msg.Length > 0 && (msg[0] == (byte)Kind.Step || msg[0] == (byte)Kind.EpisodeBegin);
        }

        static string CutReason(string reason)
        {
            byte[] b = System.Text.Encoding.UTF8.GetBytes(reason ?? "");
            if (b.Length <= Limits.MaxCloseReasonBytes) return reason ?? "";
            int n = Limits.MaxCloseReasonBytes;
            // Do not cut inside a UTF-8 sequence.
            while (n > 0 && (b[n] & 0xC0) == 0x80) n--;
            return System.Text.Encoding.UTF8.GetString(b, 0, n);
        }

        /// <summary>
        /// Queue a message. Bulk messages (STEP, EPISODE_BEGIN) are refused when the queue
        /// holds Capacity of them already, unless force (messages that must never be skipped:
        /// HELLO, EPISODE_BEGIN, policy-mode STEPs, control messages).
        /// </summary>
        public bool TryEnqueue(byte[] msg, bool force)
        {
            lock (_lock)
            {
                if (_closing || _closedReported) return false;
                bool bulk = msg.Length > 64 * 1024 || IsBulk(msg);
                if (bulk && !force && _bulkQueued >= _capacity) return false;
                if (bulk) _bulkQueued++;
                _sendQueue.Enqueue(msg);
                Monitor.PulseAll(_lock);
                return true;
            }
        }

        /// <summary>Send what is queued, then close with code and reason. Returns at once.</summary>
        public void Close(int code, string reason)
        {
            lock (_lock)
            {
                if (_closing) return;
                _closing = true;
                _closeCode = code;
                _closeReason = reason ?? "";
                Monitor.PulseAll(_lock);
            }
        }

        /// <summary>Drop the connection at once (nothing more is sent).</summary>
        public void Abort()
        {
            ClientWebSocket ws;
            lock (_lock) { ws = _ws; _closing = true; Monitor.PulseAll(_lock); }
            if (ws != null) { try { ws.Abort(); } catch (Exception) { } }
            ReportClosed(1006, "connection aborted by the tool");
        }

        void ReportClosed(int code, string reason)
        {
            lock (_lock)
            {
                if (_closedReported) return;
                _closedReported = true;
                Monitor.PulseAll(_lock);
            }
            Push(new TransportEvent { Kind = TransportEventKind.Closed, Code = code, Reason = reason ?? "" });
        }

        void Push(TransportEvent ev)
        {
            lock (_events) _events.Enqueue(ev);
            _eventSignal.Set();
        }

        /// <summary>Next event, waiting at most timeoutMs (0: do not wait). Null when none.</summary>
        public TransportEvent NextEvent(int timeoutMs)
        {
            lock (_events)
            {
                if (_events.Count > 0) return _events.Dequeue();
            }
            if (timeoutMs <= 0) return null;
            _eventSignal.WaitOne(timeoutMs);
            lock (_events)
            {
                return _events.Count > 0 ? _events.Dequeue() : null;
            }
        }
    }
}
