//! The peer core's commands as RESP bytes, packed by the `redis` crate's command encoder.

use crate::core::peer::redis::Command;

/// Append `cmd`, RESP-encoded, to `out`.
pub(crate) fn pack(cmd: &Command, out: &mut Vec<u8>) {
    let packed = match cmd {
        Command::Auth { username, password } => {
            let mut c = ::redis::cmd("AUTH");
            if let Some(user) = username {
                c.arg(user);
            }
            c.arg(password);
            c
        }
        Command::Select(db) => ::redis::cmd("SELECT").arg(*db).clone(),
        Command::Set { key, value, ttl_secs } => {
            ::redis::cmd("SET").arg(key).arg(value).arg("EX").arg(*ttl_secs).clone()
        }
        Command::Scan { cursor, pattern, count } => ::redis::cmd("SCAN")
            .arg(*cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(*count)
            .clone(),
        Command::Mget(keys) => ::redis::cmd("MGET").arg(keys).clone(),
        Command::Publish { channel, payload } => {
            ::redis::cmd("PUBLISH").arg(channel).arg(payload.as_slice()).clone()
        }
        Command::Subscribe(channels) => ::redis::cmd("SUBSCRIBE").arg(channels).clone(),
        Command::Del(key) => ::redis::cmd("DEL").arg(key).clone(),
        Command::Ping => ::redis::cmd("PING"),
        Command::SentinelMaster(name) => {
            ::redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(name).clone()
        }
        Command::ClusterSlots => ::redis::cmd("CLUSTER").arg("SLOTS").clone(),
        Command::Asking => ::redis::cmd("ASKING"),
    };
    packed.write_packed_command(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(cmd: &Command) -> String {
        let mut out = Vec::new();
        pack(cmd, &mut out);
        String::from_utf8(out).expect("ASCII in these tests")
    }

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        assert_eq!(packed(&Command::Ping), "*1\r\n$4\r\nPING\r\n");
        let set = Command::Set { key: "g:p".into(), value: "17".into(), ttl_secs: 300 };
        assert_eq!(
            packed(&set),
            "*5\r\n$3\r\nSET\r\n$3\r\ng:p\r\n$2\r\n17\r\n$2\r\nEX\r\n$3\r\n300\r\n"
        );
        let publish = Command::Publish { channel: "g:s".into(), payload: b"\x00\x01".to_vec() };
        assert_eq!(packed(&publish), "*3\r\n$7\r\nPUBLISH\r\n$3\r\ng:s\r\n$2\r\n\x00\x01\r\n");
        let auth = Command::Auth { username: None, password: "pw".into() };
        assert_eq!(packed(&auth), "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n");
        let sub = Command::Subscribe(vec!["a".into(), "b".into()]);
        assert_eq!(packed(&sub), "*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n");
    }
}
