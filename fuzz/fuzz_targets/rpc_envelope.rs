//! The oslo.messaging envelope decoders on hostile bodies: a request
//! (`decode_request`, with its salvage of the reply address) and a reply frame
//! (`ReplyFrame::decode`). Neither may panic; what decodes must survive our own
//! encoding (decode, encode, decode gives the same message).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_docker::rpc::envelope::{decode_request, open_envelope, ReplyFrame, Request};

fn same_request_but_context(a: &Request, b: &Request) {
    assert_eq!(a.method, b.method);
    assert_eq!(a.args, b.args);
    assert_eq!(a.version, b.version);
    assert_eq!(a.namespace, b.namespace);
    assert_eq!(a.reply_to, b.reply_to);
    if a.unique_id.is_some() {
        assert_eq!(a.unique_id, b.unique_id);
    }
    if a.is_call() {
        assert_eq!(a.call_monitor_timeout, b.call_monitor_timeout);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = open_envelope(data);
    match decode_request(data) {
        Ok(req) => {
            let again =
                decode_request(&req.encode()).expect("our own encoding of a request decodes");
            same_request_but_context(&req, &again);
            // the context is normalized once (typed fields laid over the raw
            // keys); from then on it is stable
            let third = decode_request(&again.encode()).expect("decodes a second time");
            assert_eq!(again, third);
        }
        Err(f) => {
            // the failure reply needs its text
            let _ = f.error.to_string();
        }
    }
    if let Ok(frame) = ReplyFrame::decode(data) {
        let _ = frame.is_heartbeat();
        let again =
            ReplyFrame::decode(&frame.encode()).expect("our own encoding of a reply decodes");
        assert_eq!(frame, again);
    }
});
